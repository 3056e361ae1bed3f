"""Building the brand-voice adapter: transcripts → dataset → LoRA → GGUF → evaluation.

Headless: nothing here imports Textual. Heavy libraries (torch, transformers, peft) are
imported inside the functions that need them.
"""
