"""Import circles: the graph of vaelab's imports, read from the source (imports inside functions included, since
they are circles dodged rather than removed; ``if TYPE_CHECKING:`` blocks and the package's lazy ``__getattr__``
excluded, since they never run at import time).

No module of vaelab is in an import circle (issue 17, item 5): each layer imports only the layers below it
(config -> data -> model -> objective -> strategy/trainer -> evaluation -> run folder -> report), and the commands
that read a run folder do not import the trainer at all (they take a loaded run, :mod:`vaelab.run`).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

NO_CIRCLE = (
    "vaelab.seeds",
    "vaelab.data.dataset",
    "vaelab.run",
    "vaelab.evaluation",
    "vaelab.distributed",
    "vaelab.runfolder",
    "vaelab.training.trainer",
    "vaelab.training.callbacks",
    "vaelab.training.sharding",
    "vaelab.training.interrupt",
    "vaelab.training.optimizers",
    "vaelab.training.tensorboard",
    "vaelab.generation",
    "vaelab.diagnose",
    "vaelab.plots.latent",
    "vaelab.report.samples",
    "vaelab.sweep.measure",
)
"""Modules in no import circle."""

WITHOUT_TRAINER = (
    "vaelab.run",
    "vaelab.evaluation",
    "vaelab.generation",
    "vaelab.diagnose",
    "vaelab.plots.latent",
    "vaelab.report.samples",
    "vaelab.lag",
)
"""Modules that read run folders (and the lag experiment, which builds its own loop) and import nothing that imports
:mod:`vaelab.training.trainer`."""

BELOW_TRAINING = (
    "vaelab.seeds",
    "vaelab.errors",
    "vaelab.rules",
    "vaelab.configio",
    "vaelab.runlock",
    "vaelab.checkpoint",
    "vaelab.precision",
    "vaelab.distributed",
    "vaelab.runfolder",
    "vaelab.run",
    "vaelab.evaluation",
    "vaelab.generation",
    "vaelab.diagnose",
    "vaelab.plots.latent",
    "vaelab.report",
    "vaelab.report.samples",
)
"""Modules of the run layer (and the commands on a run folder) that import no module of :mod:`vaelab.training`
themselves: checkpoints, precision, processes and the run folder sit below training, not inside it."""

KNOWN_CIRCLES: tuple[tuple[str, str], ...] = ()
"""Circles that remain (pairs of modules that reach each other): none."""

CONFIG_LAYER = ("vaelab.errors", "vaelab.rules", "vaelab.configio", "vaelab.registry")
"""The bottom of the config layer: every layer may raise a :class:`~vaelab.errors.ConfigError` and apply a rule, so
these import no other vaelab module."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the vaelab modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skipped: set[int] = set()
        for node in ast.walk(tree):
            type_checking = isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
            lazy_attribute = isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            if type_checking or lazy_attribute:
                skipped |= {id(n) for n in ast.walk(node)}
        deps: set[str | None] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                deps |= {resolve(a.name) for a in node.names if a.name.startswith("vaelab")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("vaelab"):
                assert node.module is not None
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    deps.add(resolve(full) if full in files else resolve(node.module))
        graph[module] = {d for d in deps if d is not None and d != module}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_run_layer_evaluation_and_training_are_in_no_import_circle():
    graph = import_graph()
    for module in NO_CIRCLE:
        assert module in graph, module
        circle = [m for m in reachable(graph, module) if module in reachable(graph, m)]
        assert module not in reachable(graph, module), f"{module} is in an import circle with {sorted(circle)}"


def test_the_commands_that_read_a_run_folder_do_not_import_the_trainer():
    graph = import_graph()
    for module in WITHOUT_TRAINER:
        assert "vaelab.training.trainer" not in reachable(graph, module), module


def test_the_run_layer_imports_nothing_from_the_training_package():
    graph = import_graph()
    for module in BELOW_TRAINING:
        upward = sorted(m for m in graph[module] if m == "vaelab.training" or m.startswith("vaelab.training."))
        assert not upward, f"{module} imports {upward}"


def test_no_new_import_circle():
    """Every module in a circle is in one of the known circles' strongly connected parts (which may shrink)."""
    graph = import_graph()
    in_circle = {m for m in graph if m in reachable(graph, m)}
    known: set[str] = set()
    for a, b in KNOWN_CIRCLES:
        if a in reachable(graph, b) and b in reachable(graph, a):
            known |= {m for m in reachable(graph, a) if a in reachable(graph, m)} | {a}
    assert in_circle <= known, f"modules in a new import circle: {sorted(in_circle - known)}"


def test_the_old_trainer_circle_would_be_found():
    """The check sees imports inside functions: the circle trainer -> tensorboard -> generation -> evaluation ->
    trainer (before the run layer) is found in a graph that has it."""
    graph = import_graph()
    graph["vaelab.evaluation"] = graph["vaelab.evaluation"] | {"vaelab.training.trainer"}
    assert "vaelab.training.trainer" in reachable(graph, "vaelab.training.trainer")


def test_no_import_circle_at_all():
    """Not one module of vaelab reaches itself through its imports (module-level or inside functions)."""
    graph = import_graph()
    circles = {m: sorted(x for x in reachable(graph, m) if m in reachable(graph, x)) for m in graph}
    in_circle = {m: c for m, c in circles.items() if m in c}
    assert not in_circle, f"modules in an import circle: {in_circle}"


def test_the_bottom_of_the_config_layer_imports_no_other_vaelab_module():
    graph = import_graph()
    for module in CONFIG_LAYER:
        assert graph[module] <= {"vaelab.errors"}, f"{module} imports {sorted(graph[module])}"


def test_a_circle_through_the_rules_would_be_found():
    """A lower layer that imported the gathered table of rules (:mod:`vaelab.checks`, which imports every layer)
    would close a circle, as ``data.text -> checks -> data`` did before the rules moved to their layers."""
    graph = import_graph()
    graph["vaelab.data.text"] = graph["vaelab.data.text"] | {"vaelab.checks"}
    assert "vaelab.data.text" in reachable(graph, "vaelab.data.text")


def test_the_package_run_class_and_the_run_layer_class_are_told_apart():
    """``vaelab.Run`` (the handle on a run folder that :func:`vaelab.train` returns) and ``vaelab.run.Run`` (the
    run layer's bundle of config, data set, model and objective, served as ``vaelab.LoadedRun``) both import, and
    the two are told apart by their names in the package (``vaelab.Run``, ``vaelab.LoadedRun``) and their docs."""
    import vaelab
    import vaelab.api
    import vaelab.run
    from vaelab.run import Run

    assert vaelab.Run is vaelab.api.Run
    assert vaelab.LoadedRun is Run is vaelab.run.Run
    assert vaelab.Run is not Run
    assert "vaelab.run.Run" in (vaelab.Run.__doc__ or "") and "vaelab.Run" in (Run.__doc__ or "")
    assert isinstance(vaelab.run, type(vaelab))  # the attribute vaelab.run is the module, not a function


def test_the_readme_map_of_the_code_lists_every_module():
    """README's "How it is organised" names every module of src/vaelab (each file, and each package folder)."""
    import re

    readme = (SRC.parent / "README.md").read_text()
    block = readme.split("## How it is organised", 1)[1].split("```", 2)[1]
    root = SRC / "vaelab"
    missing = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if path.name in ("__init__.py", "__main__.py"):
            continue
        name = path.stem if rel.parts[0] == "theory" else path.name  # theory/linear_vae/: listed by stem
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", block):
            missing.append(str(rel))
    for folder in sorted(p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        if f"{folder.name}/" not in block:
            missing.append(f"{folder.relative_to(root)}/")
    assert not missing, f"modules missing from README's map of the code: {missing}"


def test_the_models_import_nothing_from_the_data_layer():
    """A model reads batches, not data sets: no module of :mod:`vaelab.models` imports (directly or through
    another module) anything of :mod:`vaelab.data`; what text models and text data share (the special tokens,
    :class:`~vaelab.tokens.TokenBatch`) sits below both, in :mod:`vaelab.tokens`."""
    graph = import_graph()
    models = [m for m in graph if m == "vaelab.models" or m.startswith("vaelab.models.")]
    assert "vaelab.models.text" in models and "vaelab.models.custom" in models
    for module in models:
        data = sorted(m for m in reachable(graph, module) if m == "vaelab.data" or m.startswith("vaelab.data."))
        assert not data, f"{module} imports {data}"
    assert not graph["vaelab.tokens"], "vaelab.tokens is below the data and the models: it imports no vaelab module"


def test_the_shared_text_types_keep_their_old_import_paths():
    import vaelab.data.text as text
    import vaelab.data.text_batches as batches
    import vaelab.data.text_vocab as vocab
    import vaelab.tokens as tokens

    for name in tokens.__all__:
        assert getattr(text, name) is getattr(tokens, name), name
    assert batches.TokenBatch is tokens.TokenBatch
    for name in ("PAD", "BOS", "EOS", "UNK", "SPECIALS", "PAD_ID", "BOS_ID", "EOS_ID", "UNK_ID"):
        assert getattr(vocab, name) is getattr(tokens, name), name
