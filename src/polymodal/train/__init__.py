"""Contrastive fine-tuning of dual encoders (pretrain -> finetune), and what every trainer shares: the resumable
training state (``state``) and the data-file reader (``records``). ``polymodal.fusion`` builds on these; nothing
here imports ``fusion``.
"""
