"""Parse an OpenMetrics exposition (stdin) with prometheus_client's reference parser.

Prints one JSON object: {"families": [{name, type, unit, help, samples: [[name, labels, value]]}]}.
Exits non-zero, with the parser's message on stderr, when the text does not parse.
Used by tests/metrics.rs; the interpreter comes from scripts/install-test-tools.sh.
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def number(value):
    return value if math.isfinite(value) else str(value)


def main():
    text = sys.stdin.read()
    families = []
    try:
        for family in text_string_to_metric_families(text):
            families.append({
                "name": family.name,
                "type": family.type,
                "unit": family.unit,
                "help": family.documentation,
                "samples": [[s.name, s.labels, number(s.value)] for s in family.samples],
            })
    except Exception as err:  # the parser raises ValueError and friends; report them all
        print("invalid OpenMetrics text: %s" % err, file=sys.stderr)
        return 1
    json.dump({"families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
