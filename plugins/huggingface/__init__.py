"""Any Hugging Face transformers checkpoint as a model: ``loader`` finds and registers it, ``models``
wraps it per architecture, ``geometry`` maps the processor's crop back to the stimulus."""
