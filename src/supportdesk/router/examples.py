"""Example utterances per route, in the manner of semantic-router: a message is compared with
each set by cosine similarity. Generic on purpose; the labelled route set (eval/) is separate
and never used here."""

VOICE = [
    "hi", "hello there", "hey, good morning", "thanks a lot", "thank you, that helped", "cheers, bye",
    "have a great day", "ok got it", "perfect", "you're awesome", "are you a bot?", "can I talk to a person?",
    "I'm so frustrated", "this is annoying", "I love this product", "just saying thanks", "one moment please",
    "let me try that", "it works now", "yes", "no thanks", "never mind", "sorry", "I'm back",
    "how are you?", "tell me a joke", "what's your name?", "I don't understand", "can you help me?",
    "good night", "nice to meet you", "see you later", "I'll try again tomorrow", "that's all for today",
]
GROUNDED = [
    "how do I return my router?", "what is the warranty period?", "how much does the subscription cost?",
    "what does this error code mean?", "the light is amber, what does it mean?", "how do I reset the device?",
    "which firmware version fixed this bug?", "how do I set up port forwarding?", "is my internet provider supported?",
    "how many satellites can I add?", "what is the price of the router?", "when will I get my refund?",
    "how long does shipping take?", "how do I change my wifi password?", "does it support wpa3?",
    "why is my wifi slow?", "how do I cancel my plan?", "what are the support hours?", "how do I update firmware?",
    "can I use a SIM card in it?", "what ports does the router have?", "how do parental controls work?",
    "my device will not connect", "what is the default IP address?", "is there a discount?",
    "what does the status light mean", "what's included in the box", "how fast is the vpn",
]
