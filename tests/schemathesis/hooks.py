"""Schemathesis hook for tests/schemathesis/run.py: a check that records
every allocation a `POST /next-id` answer hands out, so the runner can
prove afterwards that no rejected call consumed an ID."""

import json
import os

import schemathesis

ALLOCATIONS = os.environ["PAXID_ALLOCATIONS_FILE"]


@schemathesis.check
def allocations_are_recorded(ctx, response, case):
    if case.path == "/next-id" and response.status_code == 200:
        answer = json.loads(response.text)
        with open(ALLOCATIONS, "a", encoding="utf-8") as out:
            out.write(json.dumps([answer["sequence"], answer["id"], answer["count"]]) + "\n")
    return None
