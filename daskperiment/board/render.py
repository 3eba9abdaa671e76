"""HTML fragments of the dashboard; every text from the store is escaped here."""

from __future__ import annotations

import difflib
from html import escape
from typing import Literal

from daskperiment.board.cells import cell_text
from daskperiment.board.summary import Summary
from daskperiment.direction import Direction

STYLE = """
:host { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1f2933; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #e4e7eb; border-radius: 10px; padding: 10px 16px;
        min-width: 150px; box-shadow: 0 1px 2px rgba(15, 23, 42, .06); }
.card .label { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: #7b8794; }
.card .value { font-size: 24px; font-weight: 600; margin-top: 2px; }
.card .detail { font-size: 12px; color: #52606d; margin-top: 2px; max-width: 420px;
                overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.good { color: #0e9f6e; } .bad { color: #e02424; } .muted { color: #7b8794; }
.header { display: flex; align-items: baseline; gap: 14px; }
.header h1 { font-size: 22px; margin: 0; font-weight: 650; }
.header .store { color: #7b8794; font-size: 13px; }
.status { font-size: 12px; color: #52606d; }
.status.error { color: #b91c1c; font-weight: 600; }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 4px; background: #0e9f6e;
       margin-right: 6px; }
.status.error .dot { background: #e02424; }
.message { padding: 14px 18px; border-radius: 8px; background: #fef2f2; border: 1px solid #fecaca;
           color: #991b1b; font-size: 14px; white-space: pre-wrap; }
.message.info { background: #f0f4f8; border-color: #d9e2ec; color: #334e68; }
.caption { font-size: 13px; color: #52606d; margin: 2px 0 6px; }
pre.code, table.diff { font-family: "JetBrains Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre.code { background: #f8fafc; border: 1px solid #e4e7eb; border-radius: 8px; padding: 10px 12px;
           margin: 0; overflow: auto; max-height: 560px; line-height: 1.45; white-space: pre-wrap;
           overflow-wrap: anywhere; }
pre.code .add { background: #e6ffed; color: #065f46; display: block; }
pre.code .del { background: #ffeef0; color: #9b1c1c; display: block; }
pre.code .hunk { color: #6b21a8; display: block; }
pre.code .file { color: #52606d; font-weight: 600; display: block; }
table.diff { border-collapse: collapse; width: 100%; min-width: 1300px; border: 1px solid #e4e7eb; }
table.diff th { background: #f0f4f8; text-align: left; padding: 4px 8px; font-weight: 600; }
table.diff td { padding: 0 8px; white-space: pre-wrap; overflow-wrap: anywhere; vertical-align: top;
                width: 49%; }
table.diff td.n { width: 1%; color: #9aa5b1; text-align: right; user-select: none; white-space: nowrap;
                  overflow-wrap: normal; }
table.diff td.add { background: #e6ffed; } table.diff td.del { background: #ffeef0; }
table.diff td.chg { background: #fff8c5; }
div.compare { overflow: auto; max-height: 640px; border: 1px solid #e4e7eb; border-radius: 8px; }
table.compare { border-collapse: collapse; font-size: 12px; }
table.compare th, table.compare td { padding: 3px 10px; border-bottom: 1px solid #eef2f6; text-align: left;
                                     max-width: 260px; overflow-wrap: anywhere; vertical-align: top;
                                     white-space: pre-wrap; }
table.compare tr:first-child th { position: sticky; top: 0; background: #f0f4f8; }
table.compare th:first-child { position: sticky; left: 0; background: #f8fafc; font-weight: 600; }
table.compare tr.differs th:first-child { color: #b45309; }
table.compare td.differs { background: #fff8c5; font-weight: 600; }
table.compare th.best { color: #0e9f6e; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: #52606d; }
.legend .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 5px; }
h3.trial-files { font-size: 15px; margin: 14px 0 4px; font-weight: 600; }
table.files { border-collapse: collapse; font-size: 13px; margin: 4px 0 10px; }
table.files th { background: #f0f4f8; text-align: left; padding: 4px 10px; font-weight: 600; }
table.files td { padding: 3px 10px; border-top: 1px solid #e4e7eb; max-width: 520px; overflow-wrap: anywhere; }
table.files td.size { text-align: right; white-space: nowrap; }
.thumbs { display: flex; flex-wrap: wrap; gap: 12px; }
.thumb { margin: 0; padding: 6px; border: 1px solid #e4e7eb; border-radius: 8px; background: #fff; }
.thumb img { display: block; max-width: 240px; max-height: 180px; object-fit: contain; }
.thumb figcaption { font-size: 11px; color: #52606d; max-width: 240px; margin-top: 4px; overflow-wrap: anywhere; }
"""


def summary_cards(summary: Summary, direction: Direction, stored: bool = True) -> str:
    """The summary cards: trials, success rate, best result and its parameters, last trial.

    ``stored`` says whether ``direction`` is the experiment's or only assumed (none is stored).
    """
    rate = summary.success_rate
    failed = summary.trials - summary.succeeded
    rate_text = "–" if rate is None else f"{rate:.0%}"
    rate_class = "good" if rate == 1 else ("bad" if rate is not None and rate < 0.5 else "")
    if summary.best_trial is None:
        best_value, best_detail = "–", "no numeric result yet"
    else:
        best_value = f"{summary.best_result:.6g}"
        parameters = ", ".join(f"{name}={cell_text(value)}" for name, value in summary.best_parameters.items())
        best_detail = f"trial {summary.best_trial}" + (f" · {parameters}" if parameters else "")
    last = "–" if summary.last_finished is None else cell_text(summary.last_finished)
    cards = [
        ("Trials", str(summary.trials), "", f"{summary.succeeded} succeeded · {failed} failed"),
        ("Success rate", rate_text, rate_class, ""),
        (f"Best result ({'lowest' if direction == 'minimize' else 'highest'}"
         f"{'' if stored else ', assumed'})", best_value, "", best_detail),
        ("Last trial", last, "", ""),
    ]
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value {css}">{escape(value)}</div>'
        f'<div class="detail" title="{escape(detail)}">{escape(detail) or "&nbsp;"}</div></div>'
        for label, value, css, detail in cards
    ) + "</div>"


def color_legend(title: str, items: list[tuple[str, str]]) -> str:
    """A legend of colours: ``title``, then each ``(text, colour)``."""
    entries = "".join(f'<span><span class="swatch" style="background:{escape(color)}"></span>{escape(text)}</span>'
                      for text, color in items)
    return f'<div class="legend"><b>{escape(title)}:</b>{entries}</div>'


def header(experiment_id: str, store: str) -> str:
    """The title line: experiment id and store."""
    return (
        f'<div class="header"><h1>{escape(experiment_id)}</h1>'
        f'<span class="store">daskperiment dashboard · {escape(store)}</span></div>'
    )


def status(text: str, error: bool = False) -> str:
    """The live-update status line."""
    return f'<div class="status{" error" if error else ""}"><span class="dot"></span>{escape(text)}</div>'


def message(text: str, kind: Literal["error", "info"] = "error") -> str:
    """A boxed message: an error, or a hint."""
    return f'<div class="message {kind}">{escape(text)}</div>'


def caption(text: str) -> str:
    """A line of explanation above a view."""
    return f'<div class="caption">{escape(text)}</div>'


def code_block(text: str) -> str:
    """Code or plain lines, escaped, in a scrollable block."""
    return f'<pre class="code">{escape(text)}</pre>'


def unified_diff(diff: str) -> str:
    """A unified diff with added, removed and hunk lines coloured."""
    if not diff:
        return message("No difference.", "info")
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            css = "file"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        elif line.startswith("@@"):
            css = "hunk"
        else:
            lines.append(escape(line) + "\n")
            continue
        lines.append(f'<span class="{css}">{escape(line)}</span>')
    return f'<pre class="code">{"".join(lines)}</pre>'


def side_by_side_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """Two texts side by side, lines aligned, changes highlighted."""
    if old == new:
        return message("No difference.", "info")
    old_lines, new_lines = old.splitlines(), new.splitlines()
    rows = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        css_old, css_new = {"equal": ("", ""), "replace": ("chg", "chg"), "delete": ("del", ""),
                            "insert": ("", "add")}[tag]
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            left = (str(i + 1), old_lines[i]) if i < i2 else ("", "")
            right = (str(j + 1), new_lines[j]) if j < j2 else ("", "")
            rows.append(
                f'<tr><td class="n">{left[0]}</td><td class="{css_old if left[0] else ""}">{escape(left[1])}</td>'
                f'<td class="n">{right[0]}</td><td class="{css_new if right[0] else ""}">{escape(right[1])}</td></tr>'
            )
    return (
        f'<table class="diff"><tr><th colspan="2">{escape(old_label)}</th>'
        f'<th colspan="2">{escape(new_label)}</th></tr>{"".join(rows)}</table>'
    )
