"""Model wrappers for captioners and embedders: weights from a local directory or the Hugging Face cache only
(never downloaded at build time), with errors that say where a missing model was looked for."""
