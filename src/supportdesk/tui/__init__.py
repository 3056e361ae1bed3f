"""The Textual shell over the headless core (``supportdesk.session``). Only this package imports Textual."""
