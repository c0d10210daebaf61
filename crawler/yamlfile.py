"""Reading a YAML configuration file without trusting it: bounded size, nesting and alias
expansion, UTF-8 only, and no duplicate keys (PyYAML keeps the last one silently).

`read_yaml` returns both the node tree (for error lines) and the data. Every refusal is a
`yaml.YAMLError` carrying a mark, so callers report it as ``file:line: reason`` like any
syntax error; a file that is too big or not UTF-8 is a `YamlFileError` naming the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

if TYPE_CHECKING:
    from pathlib import Path

# Configuration files are a few kilobytes; the bundled sources.yaml is under 50 KiB.
MAX_YAML_BYTES = 1024 * 1024
# The deepest bundled file nests 7 levels. PyYAML composes nodes recursively (about two
# Python frames a level), so a limit far under the interpreter's 1,000 frames.
MAX_YAML_DEPTH = 64
# Nodes after every alias is expanded: a "billion laughs" file is a few lines whose aliases
# expand to 9**9 nodes, which validation would walk one by one.
MAX_YAML_NODES = 200_000
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlFileError(ValueError):
    """A YAML file refused before parsing (too big, not UTF-8); the message names it."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses deep nesting and duplicate mapping keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # Checked before PyYAML recurses, so a `[[[[...` file ends here, not in RecursionError.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                problem = f"nested deeper than {MAX_YAML_DEPTH} levels"
                raise ComposerError(None, None, problem, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # The node's own keys only: a key that overrides one merged in by `<<: *base` is
        # what merge keys are for, not a duplicate.
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    problem = f"duplicate key {key!r} (first given at line {seen[key]})"
                    raise ConstructorError(None, None, problem, key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: yaml.Node) -> None:
    """Refuse a node tree whose aliases expand past `MAX_YAML_NODES` nodes or
    `MAX_YAML_DEPTH` levels, or refer to themselves. Iterative, with each shared node
    measured once, so a bomb is measured in the time its few lines take."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_YAML_NODES:
                problem = f"aliases expand this to more than {MAX_YAML_NODES} nodes"
                raise ComposerError(None, None, problem, node.start_mark)
            if depth[key] > MAX_YAML_DEPTH:
                problem = f"aliases nest this deeper than {MAX_YAML_DEPTH} levels"
                raise ComposerError(None, None, problem, node.start_mark)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise ComposerError(None, None, "an alias refers to itself", node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def read_text(path: Path) -> str:
    """The text of a configuration file: at most `MAX_YAML_BYTES`, UTF-8.

    Raises `YamlFileError` naming the file, and OSError when it cannot be read.
    """
    with path.open("rb") as stream:
        raw = stream.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            size = max(path.stat().st_size, len(raw))
            msg = (
                f"{path}: {size:,} bytes, over the {MAX_YAML_BYTES:,}-byte limit of a "
                "configuration file (is this the right file?)"
            )
            raise YamlFileError(msg)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start]
        msg = f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"
        raise YamlFileError(msg) from None


def read_yaml(path: Path) -> tuple[yaml.Node | None, Any]:
    """The node tree and the data of a YAML file (None, None for an empty one).

    Raises `YamlFileError`, OSError, or `yaml.YAMLError` for syntax and the refusals above.
    """
    loader = StrictLoader(read_text(path))
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        check_expansion(root)
        return root, loader.construct_document(root)
    finally:
        loader.dispose()
