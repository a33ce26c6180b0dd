"""The example of docs/captum.md runs as written and prints what its comments say."""

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

PAGE = Path(__file__).resolve().parents[1] / "docs" / "captum.md"


def test_the_captum_page_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(PAGE), "exec"), {"__name__": "docs_captum"})
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "torch.Size([2, 3]) torch.Size([2, 3])",
        "torch.Size([2, 60]) torch.Size([2])",
        "torch.Size([2, 4]) torch.Size([2])",
        "KMostInfluentialResults torch.Size([2, 3])",
    ]
