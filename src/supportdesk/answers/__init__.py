"""From a customer's message to an answer: route, retrieve, prompt, generate, check citations.

Headless: nothing here imports Textual.
"""

from supportdesk.answers.pipeline import Answer, AnswerPipeline, AnswerResult, EmptyQuestion, Turn

__all__ = ["Answer", "AnswerPipeline", "AnswerResult", "EmptyQuestion", "Turn"]
