"""Helpers for the plugin tests: a tagged workload with the cost-by-tag ground truth, what the
plugin wrote, and packages of plugins installed into a temporary directory (dist-info and
entry points, found through ``sys.path`` or PYTHONPATH like any installed distribution)."""

from __future__ import annotations

import random
import textwrap
from collections import Counter
from pathlib import Path

import msgspec
import redis

from llmtap import aggregates, events, keys
from llmtap.testing import Workload

PLUGIN = "cost-by-tag"
FEATURES = ("search", "chat", "summarize")


class TaggedWorkload(Workload):
    """A :class:`Workload` whose calls carry a ``feature`` tag (some none), with the truth of
    what cost-by-tag must count: per ``label|metric``, summed over every call event."""

    def __init__(self, seed: int, **options: float) -> None:
        super().__init__(seed, **options)  # type: ignore[arg-type]
        self.tag_rng = random.Random(seed + 1)
        self.plugin_truth: Counter[str] = Counter()

    def call(self, ts: float) -> events.CallEvent:
        """Return the next call, tagged, and count it in the plugin truth."""
        call = super().call(ts)
        feature = self.tag_rng.choice((*FEATURES, None))
        if feature is not None:
            call = msgspec.structs.replace(call, tags={"feature": feature})
        label = f"feature={feature}" if feature else "_untagged"
        self.plugin_truth[f"{label}|events"] += 1
        cost = call.estimated_cost_usd
        if cost is None:
            self.plugin_truth[f"{label}|unpriced"] += 1
        else:
            self.plugin_truth[f"{label}|cost_nanousd"] += round(cost * 1e9)
            self.plugin_truth[f"{label}|est_cost_nanousd"] += round(cost * 1e9 / call.sample_rate)
        return call


def plugin_day(r: redis.Redis, day: str = "20260101") -> dict[str, int]:
    """Return the cost-by-tag day hash as ints."""
    reply = r.hgetall(keys.plugin_bucket(PLUGIN, "cost", "d", day))
    return aggregates.decode_counts(reply)


def expected(workload: TaggedWorkload) -> dict[str, int]:
    """Return the day hash a correct cost-by-tag writes for the workload."""
    return {name: value for name, value in workload.plugin_truth.items() if value}


def install(site: Path, dist: str, entry_points: dict[str, dict[str, str]],
            modules: dict[str, str] | None = None) -> Path:  # fmt: skip
    """Write a distribution ``dist`` into ``site`` (a dist-info with its entry points and the
    given modules' sources) and return ``site``, to put on sys.path or PYTHONPATH."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    sections = [
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
        for group, points in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(sections))
    for name, source in (modules or {}).items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    return site


BROKEN_POINTS = {
    "llmtap.workers": {
        "import-error": "llmtap_no_such_module:WORKER",
        "wrong-type": "string:ascii_letters",
        "raises": "broken_plugin_mod:make",
        "cost": "broken_plugin_mod:make",
    }
}
BROKEN_MODULE = {
    "broken_plugin_mod": """
        def make():
            raise RuntimeError("plugin exploded at load")
    """
}
ESCAPER_POINTS = {"llmtap.workers": {"escaper": "escaper_plugin_mod:WORKER"}}
ESCAPER_MODULE = {
    "escaper_plugin_mod": """
        from llmtap import keys
        from llmtap.plugin import BaseAnalyzer, Worker


        class Escaper(BaseAnalyzer):
            def add_call(self, event):
                self.out.ints[keys.cost("d", "20260101")]["total"] += 1


        WORKER = Worker.plugin("escaper", "writes outside its prefix", lambda ctx: Escaper())
    """
}
