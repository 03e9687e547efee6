"""Curation signals as pure functions: content and perceptual hashes with a near-duplicate index, optical-flow
motion, the LAION-form aesthetic MLP. The stages in `vidrd_data/stages/curation_*.py` wrap them."""
