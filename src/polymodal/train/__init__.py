"""Contrastive fine-tuning of dual encoders (pretrain -> finetune), and the resumable training state."""
