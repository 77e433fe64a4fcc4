"""Offer PDF benchmark: the real rendering path against a bare WeasyPrint render.

Issue 6 asks that rendering a one-page offer with 20 lines costs at most 1.5x a bare WeasyPrint
render of the same final HTML measured in the same run, with a 10-page offer (300 lines)
printed beside it.

    .venv/bin/python bench/offer_pdf.py [--runs 7]

- **Birga** (`value`): from the offer in the database to the PDF bytes, as the offer page and
  the mail do it: `pdf.render_offer_pdf` = template row lookup, `offer_context` (totals, plain
  data, words), sandboxed Jinja rendering of body and CSS, the glyph coverage check, WeasyPrint
  with our url_fetcher.
- **Baseline**: `weasyprint.HTML(string=final_html).write_pdf()` of the very HTML the real path
  produced, with WeasyPrint's default fetcher.
Both alternate after one unmeasured warm-up each (font loading, caches); medians are reported.
SQLite in a temporary folder. The last line is one JSON object (see bench/README.md).
"""
from __future__ import annotations

import argparse
import ctypes.util
import statistics
import time
from datetime import date

import _common as common

#: The settings the figure has always been taken with; the seller is printed on both offers.
CONFIG = {"TESTING": True, "BIRGA_COMPANY_NAME": "SIA Birga",
          "BIRGA_COMPANY_ADDRESS": "Brīvības iela 1, Rīga, LV-1010",
          "BIRGA_COMPANY_VAT": "LV40003000001"}


def make_offer(n_lines: int):  # noqa: ANN201
    from addons.contacts.models import Partner
    from addons.documents.offers import add_line, create_offer
    from core.extensions import db

    partner = Partner(kind="company", name="SIA Ābeļziedu dārzs", lang="lv", country="LV",
                      vat="LV40003000000", street="Ķēniņu iela 7", city="Rīga")
    db.session.add(partner)
    db.session.flush()
    offer = create_offer(partner, currency="EUR", lang="lv", offer_date=date(2026, 11, 23),
                         valid_until=date(2026, 12, 23), payment_terms="14 dienas")
    for i in range(n_lines):
        add_line(offer, description=f"Ūdens sūknis {i + 1}, ķēdes zāģis", quantity=str(1 + i % 4),
                 unit_price=f"{10 + i}.50", vat_rate="21" if i % 3 else "12")
    db.session.commit()
    return offer


def page_count(pdf_bytes: bytes) -> int:
    """Pages as poppler's pdfinfo counts them (0 when it is not installed)."""
    import subprocess
    try:
        out = subprocess.run(["pdfinfo", "-"], input=pdf_bytes, capture_output=True,  # noqa: S607
                             check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return 0
    for line in out.splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    return 0


def time_it(fn, runs: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from weasyprint import HTML

    from addons.documents.pdf import render_offer_html, render_offer_pdf

    with common.scratch("birga-bench-pdf-") as (workdir, targets):
        targets.append(common.Target("sqlite", workdir, ["documents"], config=CONFIG))
        app = targets[0].build()
        with app.app_context():
            one = make_offer(20)
            ten = make_offer(300)
            results = {}
            for label, offer in (("one_page", one), ("ten_pages", ten)):
                final = render_offer_html(offer)

                def real(offer=offer):  # noqa: ANN001, ANN202
                    return render_offer_pdf(offer).pdf

                def bare(final=final):  # noqa: ANN001, ANN202
                    return HTML(string=final).write_pdf()

                real()
                bare()  # warm-up of each
                real_ms: list[float] = []
                bare_ms: list[float] = []
                for _ in range(args.runs):  # alternate so both share the machine's state
                    real_ms += time_it(real, 1)
                    bare_ms += time_it(bare, 1)
                pdf_bytes = real()
                pages = page_count(pdf_bytes)
                results[label] = {"ms": statistics.median(real_ms),
                                  "bare_ms": statistics.median(bare_ms), "pages": pages,
                                  "bytes": len(pdf_bytes)}
    one, ten = results["one_page"], results["ten_pages"]
    harfbuzz = ctypes.util.find_library("harfbuzz-subset") is not None
    print(f"{'offer':<12}{'lines':>6}{'pages':>7}{'Birga ms':>10}{'bare ms':>9}{'ratio':>7}")
    for label, lines in (("one_page", 20), ("ten_pages", 300)):
        r = results[label]
        print(f"{label:<12}{lines:>6}{r['pages']:>7}{r['ms']:>10.1f}{r['bare_ms']:>9.1f}"
              f"{r['ms'] / r['bare_ms']:>7.2f}")
    print(f"libharfbuzz-subset: {'yes' if harfbuzz else 'MISSING (slow font subsetting)'}; "
          f"target ratio <= 1.5 for the one-page offer")
    common.print_result(
        "offer_pdf", round(one["ms"], 1), "ms", round(one["bare_ms"], 1),
        round(one["ms"] / one["bare_ms"], 3), target=1.5, runs=args.runs, lines=20,
        pages=one["pages"], ten_pages_ms=round(ten["ms"], 1),
        ten_pages_bare_ms=round(ten["bare_ms"], 1),
        ten_pages_ratio=round(ten["ms"] / ten["bare_ms"], 3), ten_pages=ten["pages"],
        harfbuzz_subset=harfbuzz)


if __name__ == "__main__":
    main()
