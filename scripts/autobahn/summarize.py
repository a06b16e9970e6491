#!/usr/bin/env python3
"""Summarise an Autobahn TestSuite fuzzing-server report for one agent.

usage: summarize.py INDEX_JSON AGENT [--markdown FILE --suite-version V
                                      --tether-version V --seconds S]

Prints
    cases: N, OK: a, NON-STRICT: b, INFORMATIONAL: c, FAILED: d[, UNIMPLEMENTED: e]
    failed cases: <ids with behavior/close> | none
    the non-strict and informational ids, then counts per section.
With --markdown, also (re)writes FILE (docs/conformance.md) with the same
summary, the date, the suite's version and the tokio-tungstenite baseline.

Exit status: 0 no case FAILED, 1 some case FAILED, 2 the report is unusable.

A case is FAILED when its `behavior` is not one the suite counts as a pass
(OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED), or when its `behaviorClose`
is FAILED or UNCLEAN (the two close results the HTML report shows in red).
Otherwise it counts under its `behavior`.
"""
import argparse
import datetime
import json
import sys
import textwrap
from collections import Counter, defaultdict

PASSING = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED")
CLOSE_FATAL = ("FAILED", "UNCLEAN")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")

# tokio-tungstenite 0.30 alone (a minimal client that echoes inside its read
# loop), same suite, same cases, measured on this kind of machine: the
# library Tether uses for the protocol.
BASELINE = ("tokio-tungstenite 0.30 alone, with a minimal echo client, same "
            "suite and cases: `cases: 301, OK: 296, NON-STRICT: 2, "
            "INFORMATIONAL: 3, FAILED: 0`; NON-STRICT: 6.4.3, 6.4.4; "
            "INFORMATIONAL: 7.1.6, 7.13.1, 7.13.2")

# Why Tether gets a non-OK verdict where it does, for the report's notes.
# Each note is printed when one of its cases has that verdict.
NOTES = [
    ("NON-STRICT",
     "3.2 3.3 3.4 4.1.3 4.1.4 4.1.5 4.2.3 4.2.4 4.2.5 5.15".split(),
     "The server sends a valid message and, right behind it, a frame that "
     "breaks the protocol. Tether delivers the message, lets the app answer "
     "what it received (until the app polls with nothing pending, at most "
     "1 s), then fails the connection with Close 1002. A NON-STRICT here "
     "means the echo still came after the failure: the app did not poll "
     "again within that time."),
    ("NON-STRICT", ["6.4.3", "6.4.4"],
     "A text frame with invalid UTF-8 arrives in three chops with pauses "
     "between them. The UTF-8 check runs once the frame is complete, not at "
     "the first bad chop, so the connection fails (Close 1007) after the "
     "suite's pause rather than at once. Fragmented messages (6.4.1, 6.4.2) "
     "do fail fast. Same verdicts as tokio-tungstenite."),
    ("INFORMATIONAL", ["7.1.6", "7.13.1", "7.13.2"],
     "Behaviour the specification leaves open (a close racing a large "
     "echo, close codes 5000 and 65535); same verdicts as "
     "tokio-tungstenite."),
]


def case_key(cid):
    return tuple(int(p) for p in cid.split("."))


class Summary:
    def __init__(self, cases):
        self.cases = cases
        self.ids = sorted(cases, key=case_key)
        self.counts = Counter()
        self.sections = defaultdict(Counter)
        self.failed = []
        for cid in self.ids:
            result = cases[cid]
            behavior = result.get("behavior", "?")
            close = result.get("behaviorClose", "?")
            if behavior not in PASSING or close in CLOSE_FATAL:
                status = "FAILED"
                self.failed.append("%s (behavior=%s, close=%s)" % (cid, behavior, close))
            else:
                status = behavior
            self.counts[status] += 1
            self.sections[cid.split(".")[0]][status] += 1

    def line(self):
        c = self.counts
        text = "cases: %d, OK: %d, NON-STRICT: %d, INFORMATIONAL: %d, FAILED: %d" % (
            len(self.ids), c["OK"], c["NON-STRICT"], c["INFORMATIONAL"], c["FAILED"])
        if c["UNIMPLEMENTED"]:
            text += ", UNIMPLEMENTED: %d" % c["UNIMPLEMENTED"]
        return text

    def failed_line(self):
        return "failed cases: " + (", ".join(self.failed) if self.failed else "none")

    def ids_with(self, behavior):
        return [cid for cid in self.ids if self.cases[cid].get("behavior") == behavior]

    def section_rows(self):
        for section in sorted(self.sections, key=int):
            c = self.sections[section]
            yield section, sum(c.values()), [c[k] for k in COLUMNS]


def print_summary(s):
    print(s.line())
    print(s.failed_line())
    for behavior in ("NON-STRICT", "INFORMATIONAL"):
        ids = s.ids_with(behavior)
        if ids:
            print("%s: %s" % (behavior.lower(), ", ".join(ids)))
    print("per section (%s):" % "/".join(COLUMNS))
    for section, total, row in s.section_rows():
        print("  %2s.*: %3d cases  %s" % (section, total, "/".join(str(n) for n in row)))


def markdown(s, args):
    def ids(behavior):
        found = s.ids_with(behavior)
        return ", ".join(found) if found else "none"

    out = [
        "# Conformance: Autobahn TestSuite, client mode",
        "",
        "Generated by `scripts/autobahn.sh` (do not edit by hand; run the script).",
        "The client is `examples/autobahn_client.rs`, built on Tether's public",
        "Rust API, against the suite's fuzzing server on 127.0.0.1.",
        "",
        "- Date: %s" % datetime.date.today().isoformat(),
        "- Suite: %s" % args.suite_version,
        "- Tether: %s" % args.tether_version,
        "- Cases: 1.* to 10.* (12.* and 13.* need permessage-deflate, which",
        "  Tether does not offer)",
    ]
    # No run time here: it changes every run (the script's log has it).
    out += [
        "",
        "## Result",
        "",
        "```",
        s.line(),
        s.failed_line(),
        "```",
        "",
        "- NON-STRICT: %s" % ids("NON-STRICT"),
        "- INFORMATIONAL: %s" % ids("INFORMATIONAL"),
        "",
        "| section | cases | %s |" % " | ".join(COLUMNS),
        "| --- | ---: |%s" % (" ---: |" * len(COLUMNS)),
    ]
    for section, total, row in s.section_rows():
        out.append("| %s.* | %d | %s |" % (section, total, " | ".join(str(n) for n in row)))
    notes = [(verdict, ids, text) for verdict, ids, text in NOTES
             if any(cid in s.cases and s.cases[cid].get("behavior") == verdict for cid in ids)]
    if notes:
        out += ["", "## Notes", ""]
        for verdict, ids, text in notes:
            hit = [cid for cid in ids if s.cases.get(cid, {}).get("behavior") == verdict]
            out += textwrap.wrap("- %s %s: %s" % (verdict, ", ".join(hit), text),
                                 width=76, subsequent_indent="  ",
                                 break_on_hyphens=False)
    out += [
        "",
        "## Baseline",
        "",
        *textwrap.wrap(BASELINE + ".", width=76, break_on_hyphens=False),
        "",
        "A case counts as FAILED when the suite's verdict is FAILED or when the",
        "closing behaviour is FAILED or UNCLEAN. NON-STRICT and INFORMATIONAL",
        "are passes: the suite accepts the behaviour and notes a difference.",
        "",
    ]
    with open(args.markdown, "w") as f:
        f.write("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index")
    parser.add_argument("agent")
    parser.add_argument("--markdown")
    parser.add_argument("--suite-version", default="unknown")
    parser.add_argument("--tether-version", default="unknown")
    parser.add_argument("--seconds", type=int)
    args = parser.parse_args()
    try:
        with open(args.index) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print("cannot read report %s: %s" % (args.index, e), file=sys.stderr)
        return 2
    if args.agent not in data or not data[args.agent]:
        print("agent %r not in report (agents: %s)"
              % (args.agent, ", ".join(sorted(data)) or "none"), file=sys.stderr)
        return 2
    summary = Summary(data[args.agent])
    print_summary(summary)
    if args.markdown:
        markdown(summary, args)
    return 1 if summary.counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
