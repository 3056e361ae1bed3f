"""Same as `supportdesk adapter prepare`: transcripts → validated, PII-scrubbed train/eval split."""

from supportdesk.cli import app

if __name__ == "__main__":
    import sys

    app(["adapter", "prepare", *sys.argv[1:]])
