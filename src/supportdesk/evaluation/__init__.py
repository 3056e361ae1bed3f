"""Measuring supportdesk: public-set readers, scorers and the benchmark runs behind ``supportdesk eval``.

Nothing here answers a customer; ``answers/`` does that. These modules only build throw-away
knowledge bases from public sets and score what the product does on them.
"""
