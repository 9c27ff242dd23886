"""A scene's [look]: validation in one line, per-layout defaults, the transcript round trip."""

from __future__ import annotations

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"

import pytest  # noqa: E402

from performance.show.look import FONTS_DIR, LAYOUT_DEFAULTS, Look, resolve  # noqa: E402
from performance.show.schema import ConfigError, Table  # noqa: E402


def one_line_error(data: dict, file: str = "scenes/x.toml") -> str:
    with pytest.raises(ConfigError) as e:
        Look.from_table(Table(data, file, "look"))
    msg = str(e.value)
    assert "\n" not in msg and file in msg
    return msg


def test_bad_colour_is_one_line_naming_file_and_key():
    msg = one_line_error({"color": "red"})
    assert "look.color" in msg and "red" in msg
    assert "#rrggbb" in msg
    assert "look.background" in one_line_error({"background": "#12345"})
    assert "look.highlight" in one_line_error({"highlight": "#gg0000"})


@pytest.mark.parametrize("key,value,hint", [
    ("overflow", "wrap", "shrink, page, scroll"),
    ("align", "right", "left, center"),
    ("size", 2, "from 6 to 400"),
    ("fade_out", -1.0, "from 0.0 to 30.0"),
    ("caption", "yes", "true or false"),
    ("font", "comic.ttf", ".ttf/.otf"),
    ("colour", "#ffffff", "unknown key"),
])
def test_each_bad_key_is_named(key, value, hint):
    msg = one_line_error({key: value})
    assert f"look.{key}" in msg and hint in msg


def test_valid_table_and_font_file(tmp_path):
    look = Look.from_table(Table({"font": "mono", "size": 50, "color": "#AABBCC", "fade_in": 1.5, "fade_out": 0.5,
                                  "overflow": "page", "page_seconds": 4, "caption": True}, "s.toml", "look"))
    assert (look.size, look.color, look.fade_in, look.fade_out, look.overflow, look.page_seconds, look.caption) == \
        (50, "#aabbcc", 1.5, 0.5, "page", 4.0, True)
    assert look.font_path() == FONTS_DIR / "DejaVuSansMono.ttf"
    scene = tmp_path / "scene.toml"
    font = tmp_path / "mine.ttf"
    font.write_bytes((FONTS_DIR / "DejaVuSans.ttf").read_bytes())
    assert Look.from_table(Table({"font": "mine.ttf"}, scene, "look")).font_path() == font.resolve()


def test_layout_defaults_fill_only_what_the_scene_left_out():
    plain = Look()
    assert resolve(plain, "sentence").size == LAYOUT_DEFAULTS["sentence"]["size"]
    assert resolve(plain, "sentence").align == "center"
    assert resolve(plain, "stream").overflow == "scroll"
    assert resolve(Look(size=40, align="left"), "sentence").size == 40
    assert resolve(Look(size=40, align="left"), "sentence").align == "left"
    for layout in LAYOUT_DEFAULTS:
        r = resolve(plain, layout)
        assert None not in (r.size, r.margin, r.align, r.overflow)


def test_round_trip_through_a_transcript_and_leniency():
    look = Look(font="sans", size=33, color="#010203", fade_out=2.0, overflow="page", caption=True)
    assert Look.from_dict(look.to_dict()) == look
    assert Look.from_dict(None) == Look()
    # another version's transcript: unknown keys dropped, a bad value keeps its default, no exception
    odd = Look.from_dict({"size": "huge", "color": "#ffffff", "sparkle": 3, "margin": None})
    assert odd == Look(color="#ffffff")
