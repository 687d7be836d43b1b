"""Self-contained HTML: every image inline as a data URI, the style inline, no script, font or network address."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import cv2
import numpy as np

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1600px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.paper td { color: #555; font-style: italic; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure, .gallery figure { margin: 0; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
.gallery figure { border: 3px solid #ccc; padding: 3px; background: #fafafa; }
.gallery figure.fn { border-color: #d62728; } .gallery figure.fp { border-color: #ff7f0e; }
.gallery figure.tp, .gallery figure.tn { border-color: #9c9; }
figcaption { font-size: 0.8em; max-width: 40em; }
.legend span { display: inline-block; padding: 0 0.5em; margin-right: 0.6em; }
.note { color: #555; font-size: 0.9em; }
"""


def escape(text: object) -> str:
    """HTML-escape ``str(text)``."""
    return html.escape(str(text), quote=True)


def data_uri(payload: bytes, mime: str) -> str:
    """``data:MIME;base64,...`` for inline images."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image_uri(image: np.ndarray, jpeg_quality: int | None = None) -> str:
    """An (H, W, 3) uint8 RGB image as a PNG (default) or JPEG data URI."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if jpeg_quality is None:
        ok, encoded = cv2.imencode(".png", bgr)
        mime = "image/png"
    else:
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        mime = "image/jpeg"
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape}")
    return data_uri(encoded.tobytes(), mime)


def img(uri: str, alt: str, **attributes: str) -> str:
    """An ``<img>`` element; ``attributes`` are added escaped (``class_`` for ``class``)."""
    extra = "".join(f' {name.rstrip("_")}="{escape(value)}"' for name, value in attributes.items())
    return f'<img src="{uri}" alt="{escape(alt)}"{extra}>'


def table(header: Sequence[str] | None, rows: Sequence[Sequence[object]], numeric_from: int = 1,
          row_classes: Sequence[str] | None = None, **attributes: str) -> str:
    """A ``<table>``, without a head row when ``header`` is None.

    Cells from column ``numeric_from`` on are right-aligned; cell values are escaped.
    """
    extra = "".join(f' {name.rstrip("_")}="{escape(value)}"' for name, value in attributes.items())
    head = "" if header is None else "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead>"
    body = []
    for index, row in enumerate(rows):
        css = f' class="{escape(row_classes[index])}"' if row_classes and row_classes[index] else ""
        cells = "".join(f'<td class="num">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table{extra}>{head}<tbody>{''.join(body)}</tbody></table>"


def page(title: str, body: str) -> str:
    """A complete HTML document with the inline style; ``body`` is trusted HTML."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<link rel="icon" href="data:,"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
