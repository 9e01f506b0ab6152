"""The package's import graph has no cycles (the layers between packages are checked by
import-linter's contracts in pyproject.toml, run by `make test`)."""

from __future__ import annotations

import grimp


def test_no_module_of_curate_imports_itself_back():
    graph = grimp.build_graph("curate", include_external_packages=False)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if graph.chain_exists(importer=imported, imported=importer):
                cycles.append(f"{importer} <-> {imported}")
    assert cycles == []
