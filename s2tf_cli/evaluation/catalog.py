"""Every figure `s2tf eval` reports: its name (the table's column and the JSON key), how it is printed and
which way is better. The writers read it, so a figure is never dropped for a misspelt column name: a key
outside the catalog is still printed (after the known ones) and a test keeps the catalog complete."""

from __future__ import annotations

import math
from dataclasses import dataclass

HIGHER, LOWER, NEITHER = "higher", "lower", ""


@dataclass(frozen=True)
class Metric:
    name: str
    better: str = HIGHER  # HIGHER, LOWER or NEITHER (context: a standard error, a shuffled control, a count)
    fmt: str = ""  # a format spec; "" prints floats with 3 decimals under 10 and 1 above, others as they are
    shown: bool = True  # False: in the JSON only (counts and per-person detail behind a figure)

    def format(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if self.fmt:
            return format(value, self.fmt)
        if self.name.endswith("±"):  # one decimal on percentages; a cosine's SE needs three
            return f"{value:.1f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3f}"
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)


def _se(name: str) -> Metric:
    return Metric(f"{name} ±", NEITHER)


# In the paper's order, then ours.
CATALOG: tuple[Metric, ...] = (
    Metric("people", NEITHER),
    Metric("cosine"), _se("cosine"), Metric("l1", LOWER),
    Metric("R@1"), Metric("R@5"), _se("R@5"), Metric("R@10"),
    Metric("voice R@1"), Metric("voice R@5"), _se("voice R@5"), Metric("voice R@10"),
    Metric("AUC rand"), _se("AUC rand"), Metric("AUC G"), _se("AUC G"), Metric("AUC N"), Metric("AUC A"),
    Metric("AUC GNA"), Metric("gender %"), _se("gender %"),
    Metric("judge gender % real faces"), Metric("judge gender % blurred real faces"),
    Metric("age group %"), _se("age group %"), Metric("KID", LOWER),
    Metric("unseen recon cosine"), Metric("unseen recon L1", LOWER),
    Metric("LMD", LOWER), Metric("LMD shuffled audio", NEITHER),
    Metric("mouth-loudness corr"), Metric("mouth-loudness corr real frames", NEITHER), Metric("f_ir mouth R2"),
    Metric("f_ir probe clips", NEITHER), Metric("f_id^v face-score R2"), Metric("f_id^a face-score R2"),
    Metric("sync offset 0 %"), Metric("sync offset ±1 %"), Metric("sync conf"),
    Metric("sync conf shuffled audio", NEITHER), Metric("sync offset 0 % real frames", NEITHER),
    Metric("sync conf real frames", NEITHER), Metric("real mean rank", LOWER),
    Metric("real held-out mean rank", LOWER), Metric("real R@1"), Metric("real gender %"),
    Metric("real talk gap quiet", NEITHER), Metric("real talk gap loud", NEITHER),
    Metric("real talk mouth-loudness corr"), Metric("real frontal gap", NEITHER),
    Metric("faces_per_s"), Metric("frames_per_s"), Metric("device", NEITHER),
    *(Metric(name, NEITHER, shown=False) for name in (
        "AUC rand trials", "AUC G trials", "AUC N trials", "AUC A trials", "AUC GNA trials", "AUC N ±", "AUC A ±",
        "AUC GNA ±", "gender n", "age n", "LMD clips", "judge misses", "real people", "real ranks", "real R@5",
        "real chance rank")),
)  # fmt: skip
BY_NAME = {m.name: m for m in CATALOG}


def columns(rows: dict[str, dict]) -> list[Metric]:
    """The catalog's metrics some row has, in order, then any other key (never silently dropped)."""
    keys = {k for r in rows.values() for k in r if not k.startswith("_")}
    known = [m for m in CATALOG if m.name in keys and m.shown and m.name != "people"]
    return known + [Metric(k, NEITHER) for k in sorted(keys - set(BY_NAME))]
