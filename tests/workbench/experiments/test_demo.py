from __future__ import annotations

import pytest

from workbench.experiments.models import Dataset
from workbench.lib.demo import demo_seed

pytestmark = pytest.mark.django_db


def test_it_seeds_the_sample_dataset_once() -> None:
    demo_seed()
    demo_seed()
    dataset = Dataset.objects.get()
    assert dataset.source == "sample" and dataset.item_count == dataset.items.count() >= 10
