"""Admin against a real broker: create/delete with if-(not-)exists, as the CLI's flags use them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conftest import unique_topic
from gafka import Admin
from gafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

if TYPE_CHECKING:
    from conftest import BrokerProcess


def test_create_topic_if_not_exists_and_delete_if_exists(shared_broker: BrokerProcess) -> None:
    name = unique_topic("admin")
    with Admin(shared_broker.url) as admin:
        assert len(admin.create_topic(name, 3)["partitions"]) == 3
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topic(name, 7)
        assert len(admin.create_topic(name, 7, if_not_exists=True)["partitions"]) == 3
        assert admin.ensure_topic(name, 7)[1] is False
        assert admin.delete_topic(name) is True
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topic(name)
        assert admin.delete_topic(name, if_exists=True) is False
        topic, created = admin.ensure_topic(name, 2)
        assert created and len(topic["partitions"]) == 2
