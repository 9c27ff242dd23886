"""The x-ray layout: the poem coloured by the model's confidence, the top guesses under the newest
token, one hidden unit's firing behind the text, and the surprise trace along the bottom.

Like the other layouts it only places: a list of Placed runs and Rules (filled boxes) in pixels.
Colours are quantised (CONF_LEVELS, UNIT_LEVELS) so runs of equal colour are long and the rendered
runs cache well; a typewriter re-places the page once per token, as the stream does.
"""

from __future__ import annotations

import math

from performance.show.look import colour, mix
from performance.stage.fonts import MIN_SIZE
from performance.stage.placed import Placed, Rule
from performance.stage.xray_state import XrayView

CONF_LEVELS = 8
UNIT_LEVELS = 6
TRACE_BITS = 8.0  # surprise drawn full height at 8 bits (p = 1/256) and above
SHOW = {" ": "␣", "\n": "↵", "\t": "⇥"}


def confidence_rgb(look, p: float) -> tuple[int, int, int]:
    """The look's confidence scale at p (quantised): confidence_low at p = 0, confidence_high at 1."""
    q = round(min(1.0, max(0.0, p)) * (CONF_LEVELS - 1)) / (CONF_LEVELS - 1)
    return mix(colour(look.confidence_low), colour(look.confidence_high), q)


def unit_rgb(look, u: float | None, scale: float) -> tuple[int, int, int] | None:
    """The background behind a character for a unit's activation u (None: the stage's own)."""
    if u is None:
        return None
    a = 0.55 * min(1.0, abs(u) / scale)  # a tint behind the text, never louder than the text
    q = round(a * UNIT_LEVELS / 0.55) * 0.55 / UNIT_LEVELS
    if q == 0:
        return None
    bg = colour(look.background)
    return mix(bg, colour(look.neuron_positive if u > 0 else look.neuron_negative), q)


def _chars(view: XrayView) -> tuple[str, list[float], list[float | None]]:
    """The remembered text with one p and one unit value per character (poems a blank line apart)."""
    text, ps, us = [], [], []
    last_n = None
    for n, t, p, u in view.tokens:
        if last_n is not None and n != last_n:
            text.append("\n\n")
            ps += [1.0, 1.0]
            us += [None, None]
        last_n = n
        text.append(t)
        ps += [p] * len(t)
        us += [u] * len(t)
    return "".join(text), ps, us


def _lines(lay, path: str, size: int, text: str, width: int) -> list[tuple[str, int]]:
    """Wrapped lines with their offsets in text; runs of blank lines collapse to one."""
    out: list[tuple[str, int]] = []
    pos = 0
    for para in text.split("\n"):
        if not para.strip():
            if out and out[-1][0]:
                out.append(("", pos))
        else:
            at = 0
            for ln in lay.wrap(path, size, para, width, 0):
                k = para.find(ln, at) if ln else at
                k = at if k < 0 else k
                out.append((ln, pos + k))
                at = k + len(ln)
        pos += len(para) + 1
    while out and not out[0][0]:
        out.pop(0)
    return out


def place_xray(lay, view, box: tuple[int, int, int, int], base: int, scale: float) -> list:
    """Every run and box of an x-ray frame inside box = (x, y, w, h)."""
    xv: XrayView = view.xray
    look = view.look
    x0, y0, bw, bh = box
    path = lay.fonts.path(look.font_path())
    size = base
    small = max(MIN_SIZE, int(round(look.caption_size * scale)))
    slh = lay.fonts.line_height(path, small)
    st = xv.settings
    # the box from the bottom up: the trace, the top-k panel under the newest line, then the text
    trace_h = int(bh * 0.09) if st.trace else 0
    panel_h = (st.k * slh + slh // 2) if st.k else 0
    text_h = max(slh, bh - trace_h - panel_h - (slh if trace_h else 0))
    lh = max(1, int(lay.fonts.line_height(path, size) * look.line_spacing))
    text, ps, us = _chars(xv)
    lines = _lines(lay, path, size, text, bw)
    fit = max(1, (text_h - lay.fonts.line_height(path, size)) // lh + 1)
    lines = lines[-fit:]
    while lines and not lines[0][0]:
        lines.pop(0)
    out, newest = _coloured_text(lay, look, path, size, lines, ps, us, (x0, y0), lh)
    fgd = mix(colour(look.color), colour(look.background), 0.45)
    if st.k and xv.top:
        out += _top_guesses(lay, look, xv.top[:st.k], path, size, small, slh, newest, x0 + bw, fgd)
    if trace_h:
        out += _surprise_trace(look, xv.surprise, (x0, y0 + bh - trace_h, bw, trace_h), scale, path, small, slh, fgd)
    out += _top_margin(lay, view, (x0, y0, bw), path, small, slh, fgd)
    return out


def _coloured_text(lay, look, path: str, size: int, lines: list, ps: list, us: list,
                   origin: tuple[int, int], lh: int) -> tuple[list, tuple[int, int]]:
    """The poem's lines, each cut into runs of one foreground (confidence) and one background
    (the unit's activation) colour; also where the newest line ends, for the top-k panel."""

    x0, y0 = origin
    uscale = max([1.0] + [abs(u) for u in us if u is not None])  # LSTM/GRU h lies in [-1, 1]
    out: list = []
    y = y0
    newest = (x0, y0)
    for ln, off in lines:
        if ln:
            i = 0
            while i < len(ln):
                fg, bgc = confidence_rgb(look, ps[off + i]), unit_rgb(look, us[off + i], uscale)
                j = i + 1
                while j < len(ln) and confidence_rgb(look, ps[off + j]) == fg and unit_rgb(look, us[off + j], uscale) == bgc:
                    j += 1
                x = x0 + lay.fonts.width(path, size, ln[:i])
                out.append(Placed(ln[i:j], path, size, fg, x, y, 255, bgc))
                i = j
            newest = (x0 + lay.fonts.width(path, size, ln), y)
        y += lh
    return out, newest


def _top_guesses(lay, look, top: list, path: str, size: int, small: int, slh: int,
                 newest: tuple[int, int], right: int, fgd) -> list:
    """The top-k panel under the newest line: each guess, a bar as long as its probability, the
    probability as a number; kept inside the box's right edge."""

    out: list = []
    px = min(newest[0], right - int(small * 9))
    py = newest[1] + lay.fonts.line_height(path, size) + slh // 4
    bar_w = int(small * 4)
    for s, q in top:
        label = SHOW.get(s, s.replace("\n", "↵"))
        out.append(Placed(f"{label}", path, small, confidence_rgb(look, q), px, py))
        bx = px + int(small * 2.2)
        out.append(Rule(bx, py + slh // 3, max(1, int(bar_w * q)), max(1, slh // 3), confidence_rgb(look, q)))
        out.append(Placed(f"{q:.2f}", path, small, fgd, bx + bar_w + small // 2, py))
        py += slh
    return out


def _surprise_trace(look, surprise: list, area: tuple[int, int, int, int], scale: float, path: str,
                    small: int, slh: int, fgd) -> list:
    """The surprise trace in area = (x, top, w, h): one bar per token (at least 120 slots across),
    its baseline, and its label above."""

    x0, ty, bw, trace_h = area
    out: list = []
    n = len(surprise)
    if n:
        step = bw / max(n, 120)
        for k, s in enumerate(surprise):
            hgt = max(1, int(trace_h * min(1.0, s / TRACE_BITS)))
            bx = int(x0 + k * step)
            out.append(Rule(bx, ty + trace_h - hgt, max(1, int(step) - 1 if step >= 3 else 1), hgt,
                            confidence_rgb(look, 2.0 ** -s)))
    out.append(Rule(x0, ty + trace_h, bw, max(1, int(scale)), fgd))
    out.append(Placed("surprise (bits)", path, small, fgd, x0, ty - slh))
    return out


def _top_margin(lay, view, top_edge: tuple[int, int, int], path: str, small: int, slh: int, fgd) -> list:
    """The margin above the text: the loss curve at the right, the unit's name left of it, and
    the checkpoint's label at the left (unless the caption names it already)."""

    xv: XrayView = view.xray
    x0, y0, bw = top_edge
    out: list = []
    right = x0 + bw
    if xv.settings.curve and len(xv.curve) >= 2:
        cw = int(bw * 0.18)
        out += _curve(xv.curve, (right - cw, max(1, int(y0 * 0.2)), cw, max(4, int(y0 * 0.55))), view.look, Rule)
        right -= cw + small
    if xv.unit is not None:
        label = f"unit {xv.unit}"
        out.append(Placed(label, path, small, fgd, right - lay.fonts.width(path, small, label), max(0, y0 - slh - 4)))
    if xv.label and not view.caption:  # the caption names the checkpoint already
        out.append(Placed(xv.label, path, small, fgd, x0, max(0, y0 - slh - 4)))
    return out


def _curve(points, box, look, Rule) -> list:
    """The validation-loss curve as dots (step, loss) in box, the newest brightest."""
    x0, y0, w, h = box
    xs = [a for a, _ in points]
    ys = [b for _, b in points]
    lo, hi = min(ys), max(ys)
    span_x = max(1e-9, max(xs) - min(xs))
    span_y = max(1e-9, hi - lo)
    fg = colour(look.color)
    out = [Rule(x0, y0 + h, w, 1, mix(fg, colour(look.background), 0.7))]
    for k, (a, b) in enumerate(points):
        x = x0 + int((a - min(xs)) / span_x * (w - 3))
        y = y0 + int((hi - b) / span_y * (h - 3))  # high loss at the top: learning falls to the right
        out.append(Rule(x, y, 3, 3, mix(fg, colour(look.background), 0.6 * (1 - (k + 1) / len(points)))))
    return out


def surprise_bits(p: float) -> float:
    """-log2 p, bounded (what the trace draws)."""
    return -math.log2(min(1.0, max(1e-12, p)))
