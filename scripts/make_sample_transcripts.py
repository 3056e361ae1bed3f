"""Generate the sample support transcripts of Kestrel Networks (transcripts/kestrel_care.jsonl).

Conversations follow Kestrel Care's house style — a house greeting, warm and brief, company
terms (Flock, Perch, Roost, KestrelOS), and the brand profile's sign-off (kb/.supportdesk-brand.toml:
"Happy surfing! — Kestrel Care"; never a person's name: the bot that learns this voice is an
automated assistant) — and every fact matches kb/. Deterministic (seeded), so the file can be
regenerated:

    .venv/bin/python scripts/make_sample_transcripts.py
"""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "transcripts" / "kestrel_care.jsonl"
HOUSE_SIGN_OFF = tomllib.loads((ROOT / "kb" / ".supportdesk-brand.toml").read_text())["brand"]["sign_off"]
NAMES = ["Sam", "Alex", "Jordan", "Taylor", "Chris", "Morgan", "Riley", "Jamie", "Dana", "Robin", "Casey", "Avery",
         "Pat", "Lee", "Noor", "Ines", "Tomasz", "Mei", "Olu", "Sofia"]
# The bot never knows the customer's name, so the house greeting does not use one.
GREET = ["Hi there, thanks for reaching out to Kestrel Care!", "Hi, thanks for contacting Kestrel Care!",
         "Hello, thanks for getting in touch with Kestrel Care!", "Hi there! Thanks for reaching out to Kestrel Care."]
SIGN = [HOUSE_SIGN_OFF, HOUSE_SIGN_OFF, f"Anything else, just reply here. {HOUSE_SIGN_OFF}"]

# (customer openings, agent answer, optional follow-up (customer, agent))
INTENTS = [
    (["How do I return my router?", "I want to send back the Aerie I bought, how does that work?",
      "can i return a router i opened?", "I'd like to return my Kestrel router please"],
     "You can return any new Kestrel product within 45 days of delivery, even if it's opened. Start the return in Roost under Account > Orders > Start a return to get your RMA number, then pack everything that came in the box and drop it at UPS with the prepaid label.",
     ("How long until I get my money back?", "Our returns centre inspects it within 3 business days of receiving it, and card refunds then show up within 5 to 7 business days.")),
    (["How long is the warranty?", "what's the warranty on the KR-300?", "Is my Perch still under warranty? I bought it 18 months ago"],
     "Kestrel hardware has a 2-year limited warranty in the US and Canada (3 years in the EU and UK). If anything goes wrong, send us the serial number from the label (it starts with KN) and we'll take care of it.",
     ("Does it cover lightning damage?", "The standard warranty doesn't cover lightning or power surges, but Kestrel Care+ adds accidental damage protection, with a $29 service fee per claim.")),
    (["My router light is amber", "the light on my Aerie turned orange and nothing loads", "Solid amber light, what does it mean?"],
     "A solid amber light means your Aerie is working but can't reach the internet. Let's restart in the right order: unplug the modem and the Aerie, wait 30 seconds, plug in the modem first and wait until it's online, then plug in the Aerie. Roost will also show an error code on the Flock tab that tells us more.",
     ("It says KE-102", "KE-102 means the modem didn't give your Aerie an address. Turn the modem off for 30 seconds (5 minutes for Spectrum or Cox) and try again; if it persists we can clone your old router's MAC address under Flock > Advanced > WAN.")),
    (["My Perch light is purple", "why is my satellite purple?", "Perch shows purple, wifi slow upstairs"],
     "A purple light means that Perch has a weak link to the rest of your Flock. Try moving it one room closer to the Aerie, no more than two rooms away, and off the floor. You can check the backhaul under Flock > Perch > Backhaul in Roost; aim for Good or Excellent.",
     ("Can I use a cable instead?", "Absolutely! Connect the Perch to the Aerie with an Ethernet cable and the Flock switches to wired backhaul automatically.")),
    (["How much is Guardian?", "what does guardian cost", "Is Guardian Family worth it? how much?"],
     "Guardian is $5.99 a month or $59 a year, and Guardian Family is $8.99 a month or $89 a year. Family adds app filters, Focus Time and SafeSearch on top of threat and ad blocking. Every new Aerie comes with a 30-day free trial of Guardian Family.",
     ("How do I cancel if I don't like it?", "You can cancel any time in Roost under Account > Subscriptions; yearly plans cancelled within 14 days are refunded in full.")),
    (["How do I factory reset my Aerie?", "need to reset the router to factory settings", "how to reset kestrel router"],
     "Press and hold the Reset pinhole on the back with a paper clip for 12 seconds, until the light pulses amber, then let go. The reset takes about four minutes, and the light pulses blue when it's ready to set up again in Roost.", None),
    (["How do I change my wifi password?", "want to change the wifi password", "how to update my network password"],
     "In Roost, open Flock > Wi-Fi > Networks, choose your network and tap Password. Your devices will need to reconnect with the new password.", None),
    (["Can I set up port forwarding?", "how do I open a port for my game server", "port forwarding for minecraft?"],
     "Sure! First reserve the device's IP under Devices > (device) > Reserve IP, then add a rule under Flock > Advanced > Port forwarding > Add rule with the external port, internal port and protocol. It works right away.",
     ("It still doesn't work", "Check the WAN address under Flock > Advanced > WAN > Status: if it's a private address you're behind double NAT (KE-110), and the provider's box needs bridge mode.")),
    (["When do updates install?", "does the router update itself?", "will firmware updates interrupt my internet?"],
     "KestrelOS updates install automatically at night, between 02:00 and 04:00 local time by default, so they won't interrupt your day. You can change the window under Settings > System > Updates in Roost.", None),
    (["Is the Talon sold in the UK?", "can I buy a Talon 5G in Europe?"],
     "I'm sorry, the Talon 5G is only sold in the United States and Canada for now.", None),
    (["How long does the Talon battery last?", "talon battery life?"],
     "The Talon 5G's battery lasts about 6 hours of typical use and charges fully in about 3 hours.", None),
    (["Can I add more Perches to my Flock?", "how many satellites can I have?"],
     "An Aerie AX3000 or Aerie Pro Flock supports up to six Perch satellites, and an Aerie AX1800 up to three. Place each one about halfway between the router and the area you want to cover.", None),
    (["Do you ship overnight?", "how fast can you ship?", "shipping options?"],
     "Yes! Standard shipping is free on orders of $49 or more (3 to 5 business days), Express is $14.95 (2 business days), and Overnight is $29.95 when you order by 1:00 PM Pacific.", None),
    (["I can't sign in to Roost", "Roost says KE-201", "locked out of my account"],
     "After 10 failed attempts your account locks for 30 minutes. Tap Forgot password on the sign-in screen; the reset link is valid for 60 minutes.", None),
    (["Is there a student discount?", "do you have military discounts?"],
     "We do! Verified students, teachers, military members and veterans in the US get 10% off one router or bundle per year through the Kestrel Store.", None),
    (["The box arrived damaged", "my package came crushed"],
     "I'm so sorry about that! Please take photos of the box and the router before unpacking further and send them to us within 7 days; we'll ship a replacement without waiting for the damaged one to come back.", None),
    (["What's your phone number?", "when are you open?", "can I call someone?"],
     "You can call us at 1-888-537-8735, weekdays 06:00 to 20:00 and weekends 08:00 to 17:00 Pacific. Guardian subscribers and Care+ holders can also chat with us 24/7 in Roost.", None),
    (["My smart plug won't connect", "my IoT devices can't join the wifi"],
     "Many smart plugs only work on 2.4 GHz. In Roost, go to Flock > Wi-Fi > Networks > Add network, choose 2.4 GHz only, give it a name like Home-IoT, and set up the plug on that network.", None),
    (["Does Kestrel work with Xfinity?", "will the aerie work with my comcast modem?"],
     "Yes, it works great with Xfinity. If you rent an xFi Gateway, turn on Bridge Mode in the Xfinity app so you don't end up with double NAT.", None),
    (["I want to block TikTok for my kids", "parental controls for my son?"],
     "You can do that with Guardian Family: create a profile for your son under Family > Profiles, add his devices, and block apps like TikTok under the profile's filters. Pausing and bedtime schedules work even without a subscription.", None),
]
THANKS = ["thanks!", "Thank you so much", "great, thanks", "perfect, that worked", "awesome, appreciate it", "ok thank you"]
CLOSE = ["You're very welcome! Glad we could help.", "Anytime! Enjoy your Flock.", "My pleasure!"]
SMALLTALK = [
    (["hi", "hello?", "hey there"], "Hi there, thanks for reaching out to Kestrel Care! How can I help you today?"),
    (["are you a bot?", "is this a real person?"], "I'm Kestrel Care's automated assistant, not a person, and a human colleague is always one message away. I'm happy to help with anything about your Flock."),
    (["bye!", "ok that's all, bye"], "Thanks for chatting with Kestrel Care. Happy surfing!"),
    (["you guys are great", "best support ever"], "Thank you, that's really kind! We'll pass it on to the team."),
    (["this is so frustrating, nothing works", "ugh, my internet keeps dropping"], "I'm sorry it's been frustrating, let's get this sorted together. What does the light on your Aerie look like right now?"),
]


def conversation(rng: random.Random) -> dict:
    n = rng.choice(NAMES)
    greet = rng.choice(GREET).format(n=n)
    sign = rng.choice(SIGN)
    if rng.random() < 0.15:
        asks, reply = rng.choice(SMALLTALK)
        return {"messages": [{"role": "user", "content": rng.choice(asks)},
                             {"role": "assistant", "content": reply.format(n=n)}]}
    asks, answer, follow = rng.choice(INTENTS)
    messages = [{"role": "user", "content": rng.choice(asks)},
                {"role": "assistant", "content": f"{greet} {answer} {sign}"}]
    if follow and rng.random() < 0.6:
        messages += [{"role": "user", "content": follow[0]}, {"role": "assistant", "content": f"{follow[1]} {sign}"}]
    if rng.random() < 0.5:
        messages += [{"role": "user", "content": rng.choice(THANKS)},
                     {"role": "assistant", "content": f"{rng.choice(CLOSE).format(n=n)} {sign}"}]
    return {"messages": messages}


def main() -> None:
    rng = random.Random(20261122)
    rows, seen = [], set()
    while len(rows) < 330:
        conv = conversation(rng)
        key = json.dumps(conv["messages"])
        if key in seen:
            continue
        seen.add(key)
        conv["id"] = f"kc-{len(rows) + 1:04d}"
        rows.append(conv)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} conversations ({len(seen)} distinct) to {OUT}")


if __name__ == "__main__":
    main()
