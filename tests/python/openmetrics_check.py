"""Parses OpenMetrics text from stdin with prometheus_client's strict OpenMetrics parser
(promtool 2.42 reads only the 0.0.4 text format). Prints one line per exemplar,
"<sample name> <trace_id>", and exits non-zero with the parser's message on any error."""

import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

try:
    for family in text_string_to_metric_families(sys.stdin.read()):
        for sample in family.samples:
            if sample.exemplar is not None:
                print(sample.name, sample.exemplar.labels.get("trace_id", ""))
except Exception as e:  # the parser raises ValueError and friends
    print(f"invalid OpenMetrics: {e}", file=sys.stderr)
    sys.exit(1)
