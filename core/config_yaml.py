"""How every cityagent config file and ``key=value`` override is parsed: YAML, with numbers read as people write
them and no key given twice.

PyYAML follows YAML 1.1, where ``1e-3`` is text (no dot) and ``010`` is eight (octal): a learning rate written
``5e-2`` reached scikit-learn as a string. This loader reads numbers by YAML 1.2's core schema instead, and refuses
a mapping that repeats a key (PyYAML keeps the last silently, so a typo'd duplicate would pass unnoticed).
"""

import re
from pathlib import Path
from typing import Any

import yaml

from cityagent.errors import ConfigError

# YAML 1.2 core schema: 1e-3, .5, -1.5E+3, .inf, .nan; 0o17 octal, 0x1F hex, and 010 is ten
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key!r} is given twice (first {_line(seen[key])}); keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _line(node: yaml.Node) -> str:
    return f"on line {node.start_mark.line + 1}"


def _int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node).replace("_", "")
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 16) if text.startswith("0x") else int(text)


def _float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    return float(loader.construct_scalar(node).lower().replace(".inf", "inf").replace(".nan", "nan"))


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
ConfigLoader.add_constructor("tag:yaml.org,2002:int", _int)
ConfigLoader.add_constructor("tag:yaml.org,2002:float", _float)


def parse_yaml(text: str) -> Any:
    """``text`` parsed as a config value; raises yaml.YAMLError (callers say which file or override it was)."""
    return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader: no arbitrary objects


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """The YAML file at ``path``, parsed; a ConfigError naming the file when it is not valid YAML."""
    p = Path(path)
    try:
        return parse_yaml(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {p} is not valid YAML: {yaml_problem(e)}") from e


def yaml_problem(e: yaml.YAMLError) -> str:
    """One line for a YAML error: what is wrong and where (PyYAML's own text spans several, with carets)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if problem is None:
        return str(e).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem
