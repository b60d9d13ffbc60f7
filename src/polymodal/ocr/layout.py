"""Reading order: rows from top to bottom, each row left to right.

Two lines share a row when they overlap vertically by at least half the shorter one's height, so a caption
beside a photo's title, or the cells of a table, read across before going down. Sorting by top edge alone
(PaddleOCR's ``sorted_boxes``, with its fixed 10 px tolerance) breaks a row apart as soon as its lines are a
few pixels out of level, which in a 12 MP photo they always are.
"""

from __future__ import annotations

from polymodal.ocr.types import OcrLine

#: share of the shorter line's height two lines must overlap by to be on one row
ROW_OVERLAP = 0.5


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    rows: list[tuple[float, float, list[OcrLine]]] = []  # (top, bottom, lines) of each row so far
    for line in sorted(lines, key=lambda ln: ((ln.box[1] + ln.box[3]) / 2, ln.box[0])):
        y0, y1 = line.box[1], line.box[3]
        for i, (top, bottom, members) in enumerate(rows):
            overlap = min(y1, bottom) - max(y0, top)
            shorter = min(y1 - y0, min(m.box[3] - m.box[1] for m in members))
            if overlap >= ROW_OVERLAP * max(shorter, 1):
                members.append(line)
                rows[i] = (min(top, y0), max(bottom, y1), members)
                break
        else:
            rows.append((y0, y1, [line]))
    rows.sort(key=lambda r: r[0])
    return [line for _, _, members in rows for line in sorted(members, key=lambda ln: ln.box[0])]
