"""The public API is what the README documents (STYLE.md, 11)."""
import re
import subprocess
import sys
from pathlib import Path

import vfedsim

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_exported_name_resolves():
    for name in vfedsim.__all__:
        assert getattr(vfedsim, name) is not None, name


def test_readme_lists_the_exports():
    block = re.search(r"Exported: `([^.]*)`\.", README.replace("\n", " "))
    assert block, "README lost its 'Exported:' line"
    documented = {n.strip() for n in block.group(1).split(",")}
    assert documented == set(vfedsim.__all__) - {"__version__"}


def test_import_is_light():
    code = "import sys, vfedsim; vfedsim.load_scenario; print('torch' in sys.modules, 'peft' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = re.findall(r"```bash\n(python3 -m venv[^\n]*)\n```", README)
    assert len(commands) == 2
    assert "vfedsim run scenarios/quickstart.yaml" in commands[0]
    assert "pytest" in commands[1]
    assert README.index("<!-- test-command -->") < README.index(commands[1])
