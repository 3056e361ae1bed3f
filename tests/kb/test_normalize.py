"""Ingest normalisation of text converted from PDF manuals: a menu path or a sub-heading written a
line per step stays lines; a name broken out of its sentence goes back into it (issue 26)."""

from __future__ import annotations

from supportdesk.kb.normalize import unwrap

MANUAL = (
    "If you get your TV signal from a cable box connected to an HDMI port, you must set the current time\n"
    "manually.\n"
    "- 96 -\n"
    "Adjusting the clock for DST and time zone\n"
    "Settings\n"
    "General\n"
    "System Manager\n"
    "Clock\n"
    "Sets the right time by setting Daylight Savings Time (DST) and your local time zone.\n"
)


def test_a_menu_path_written_a_step_per_line_is_not_run_into_the_text_before() -> None:
    joined = unwrap(MANUAL)
    assert "you must set the current time manually.\n" in joined
    assert "\nAdjusting the clock for DST and time zone\nSettings\nGeneral\nSystem Manager\nClock\nSets the right" \
        in joined
    assert "time zone Settings" not in joined


def test_a_sub_heading_after_a_long_sentence_stays_a_line() -> None:
    text = ("In the Ambient Mode browser screen, you can select content and change the Ambient Mode settings.\n"
            "Setting up the content for Ambient Mode\n"
            "The browser screen displays content at the top and categories at the bottom.")
    assert unwrap(text).split("\n")[1] == "Setting up the content for Ambient Mode"


def test_a_name_on_a_line_of_its_own_goes_back_into_its_sentence() -> None:
    text = ("Enjoy the multiple functions provided by\nSmart Hub\nsimultaneously on a single screen.\n"
            "If your device was not detected, position the keyboard close to the TV, and then select\n"
            "Refresh\n. The TV scans for available devices again. Once the\nClock\nis set, you can view the time.")
    joined = unwrap(text)
    assert "provided by Smart Hub simultaneously on a single screen." in joined
    assert "and then select Refresh . The TV scans" in joined
    assert "Once the Clock is set, you can view the time." in joined


def test_an_entry_label_opens_its_own_line_with_its_text() -> None:
    text = ("You can change the following settings:\nBrightness\n: Adjusts the screen brightness for Ambient Mode\n"
            "Color Tone\n: Adjusts the colors of the screen for Ambient Mode")
    assert unwrap(text).split("\n") == [
        "You can change the following settings:",
        "Brightness : Adjusts the screen brightness for Ambient Mode",
        "Color Tone : Adjusts the colors of the screen for Ambient Mode",
    ]


def test_a_name_after_a_menu_step_opens_its_own_sentence() -> None:
    text = ("Settings\nGeneral\nSmart Features\nAutorun Last App\nTry Now\nAutorun Last App\nis set to\n"
            ", the last used app is automatically run when you turn on the TV.")
    lines = unwrap(text).split("\n")
    assert lines[4] == "Try Now"
    assert lines[5].startswith("Autorun Last App is set to , the last used app")
