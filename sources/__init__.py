"""Where events come from: the synthetic worlds and their oracle (``synthetic``), and any
events file read through a column mapping (``loaders``: mapping, categories, impressions;
``ingest``: parsing, validation, quarantine and dedupe).

Not named ``datasets``: that is Hugging Face's package, which ranking modelers often
have installed in the same environment, and one of the two would shadow the other.
"""
