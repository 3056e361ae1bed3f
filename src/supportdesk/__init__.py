"""supportdesk: a hybrid customer-support bot (brand-voice LoRA + grounded retrieval)."""

__version__ = "0.1.0"
