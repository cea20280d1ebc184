"""Real English text of varied length, available offline on every machine.

Source: the docstrings of a fixed list of Python standard-library modules (and their
public classes and functions) of the running interpreter, split into paragraphs and
first sentences. That gives short texts (a sentence) and long ones (a paragraph), much
like the mixed traffic a classifier sees, without downloading a data set.
"""

from __future__ import annotations

import importlib
import inspect
import random
import re
import warnings

MODULES = (
    "argparse",
    "asyncio",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "concurrent.futures",
    "configparser",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email.message",
    "enum",
    "fractions",
    "functools",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "html.parser",
    "http.client",
    "http.server",
    "imaplib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "logging",
    "mailbox",
    "mimetypes",
    "multiprocessing",
    "numbers",
    "operator",
    "os",
    "pathlib",
    "pickle",
    "pprint",
    "queue",
    "random",
    "re",
    "sched",
    "secrets",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tokenize",
    "traceback",
    "typing",
    "unittest",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "weakref",
    "xml.dom.minidom",
    "zipfile",
    "zoneinfo",
)

_WORD = re.compile(r"[A-Za-z]{2,}")


# A real labelled task on the same text: which area of the standard library a docstring
# comes from. Used to train a classification head whose margins mean something.
TOPICS = {
    "networking": (
        "http.client",
        "http.server",
        "imaplib",
        "selectors",
        "smtplib",
        "socket",
        "socketserver",
        "ssl",
        "urllib.parse",
        "urllib.request",
    ),
    "concurrency": ("asyncio", "concurrent.futures", "multiprocessing", "queue", "sched", "threading"),
    "files": ("glob", "gzip", "io", "os", "pathlib", "shelve", "shutil", "tarfile", "tempfile", "zipfile"),
    "text": ("csv", "difflib", "html.parser", "json", "re", "string", "textwrap", "tokenize", "xml.dom.minidom"),
}


def _docstrings(modules=MODULES):
    """(module name, docstring) of each module and its public classes and functions."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        yield name, inspect.getdoc(module) or ""
        for attribute in sorted(vars(module)):
            if attribute.startswith("_"):
                continue
            with warnings.catch_warnings():  # deprecated aliases (typing.io) warn when touched
                warnings.simplefilter("ignore", DeprecationWarning)
                value = getattr(module, attribute)
                own = (inspect.isclass(value) or inspect.isfunction(value)) and getattr(
                    value, "__module__", None
                ) == name
                doc = inspect.getdoc(value) if own else None
            if doc:
                yield name, doc


def _is_prose(text: str) -> bool:
    words = text.split()
    # Drop code samples, tables and signatures: prose is mostly words.
    return len(words) >= 3 and len(_WORD.findall(text)) >= 0.7 * len(words) and ">>>" not in text


def _texts_with_modules(modules=MODULES) -> list[tuple[str, str]]:
    seen: set[str] = set()
    texts: list[tuple[str, str]] = []
    for module, doc in _docstrings(modules):
        for paragraph in re.split(r"\n\s*\n", doc):
            paragraph = " ".join(paragraph.split())
            first_sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]
            for text in (paragraph, first_sentence):
                if _is_prose(text) and text not in seen:
                    seen.add(text)
                    texts.append((text, module))
    return texts


def english_texts(count: int | None = None, seed: int = 0) -> list[str]:
    """Distinct texts in a fixed order for a given seed: paragraphs and their first sentences."""
    texts = [text for text, _ in _texts_with_modules()]
    random.Random(seed).shuffle(texts)
    return texts if count is None else texts[:count]


def labelled_texts(seed: int = 0) -> tuple[list[str], list[int], list[str]]:
    """(texts, topic index per text, topic names) for the ``TOPICS`` task, shuffled."""
    topics = list(TOPICS)
    topic_of = {module: topics.index(topic) for topic, modules in TOPICS.items() for module in modules}
    pairs = _texts_with_modules(tuple(topic_of))
    random.Random(seed).shuffle(pairs)
    return [text for text, _ in pairs], [topic_of[module] for _, module in pairs], topics


if __name__ == "__main__":
    import statistics

    texts = english_texts()
    words = [len(t.split()) for t in texts]
    print(
        f"{len(texts)} texts; words per text: mean {statistics.mean(words):.0f}, median {statistics.median(words)}, max {max(words)}"
    )
