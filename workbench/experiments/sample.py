"""The built-in sample dataset: a dozen small tasks with answers a checker can grade.

Arithmetic (number), logic (choice letters, exact), short facts (contains, regex), one
structured answer (JSON schema), one explanation a judge model grades against a rubric and one
poem people grade, so every checker shows up in a first experiment.
"""

from __future__ import annotations

from workbench.experiments.datasets import ItemInput

SAMPLE_NAME = "Sample: arithmetic, logic and facts"
SAMPLE_DESCRIPTION = "13 short tasks with known answers, one of each kind of checker."

_NUMBER_HINT = " Answer with the number only."

SAMPLE_ITEMS: tuple[ItemInput, ...] = (
    ItemInput("What is 17 × 23?" + _NUMBER_HINT, "391", "number"),
    ItemInput("What is 1,000 − 357?" + _NUMBER_HINT, "643", "number"),
    ItemInput(
        "A train travels 180 km in 2.5 hours. What is its average speed in km/h?" + _NUMBER_HINT,
        "72",
        "number",
    ),
    ItemInput(
        "What is the square root of 2, to two decimal places?",
        "1.41",
        "number",
        {"tolerance": 0.005},
    ),
    ItemInput(
        "All bloops are razzies and all razzies are lazzies. Are all bloops lazzies? "
        "Answer yes or no.",
        "yes",
        "exact",
    ),
    ItemInput(
        "Which number comes next: 2, 6, 12, 20, 30, ?\n(A) 36 (B) 40 (C) 42 (D) 44 (E) 48\n"
        "Answer with the letter.",
        "C",
        "choice",
    ),
    ItemInput(
        "If it rains, the street is wet. The street is not wet. What follows?\n"
        "(A) It rained (B) It did not rain (C) The street is dry because of the sun "
        "(D) Nothing follows\nAnswer with the letter.",
        "B",
        "choice",
    ),
    ItemInput("What is the capital of Australia?", "Canberra", "contains"),
    ItemInput("Which chemical element has the symbol Fe?", "iron", "contains"),
    ItemInput(
        "In which year did the first crewed Moon landing take place?",
        "1969",
        "regex",
        {"pattern": r"\b1969\b"},
    ),
    ItemInput(
        'Reply with JSON only: an object with "city" (a string) and "population_millions" '
        "(a number) for Tokyo.",
        "",
        "json_schema",
        {
            "schema": {
                "type": "object",
                "required": ["city", "population_millions"],
                "properties": {
                    "city": {"type": "string"},
                    "population_millions": {"type": "number"},
                },
            }
        },
    ),
    ItemInput(
        "In one or two sentences: why is the sky blue?",
        "Sunlight is scattered by the molecules of the air, and blue light, of shorter "
        "wavelength, is scattered much more than red (Rayleigh scattering).",
        "judge",
        {
            "rubric": "Correct if it explains that air molecules scatter sunlight and that "
            "shorter (blue) wavelengths scatter more. Wrong if it says the sky reflects the "
            "ocean, or gives no mechanism."
        },
    ),
    ItemInput("Write a two-line poem about the sea.", "", "human"),
)
