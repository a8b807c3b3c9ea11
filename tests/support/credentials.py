"""Credentials for the TLS brokers, made by the stack's own rules (infra.components.broker)."""

from __future__ import annotations

import itertools

from infra.components.broker import PasswordRule


def sample_password(rule: PasswordRule) -> str:
    """A password `rule` could produce, of its length, with every character class in it and as many
    distinct characters of each as the length allows (round robin over the classes, specials first),
    so a character that needs escaping somewhere shows up in the tests, not on the first deploy."""
    classes = sorted(rule.classes, key=lambda chars: chars.isalnum())
    picked = (chars[index % len(chars)] for index in itertools.count() for chars in classes)
    return "".join(itertools.islice(picked, rule.length))
