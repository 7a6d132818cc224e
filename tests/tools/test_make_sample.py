"""tools/make_sample.py (kept out of the wheel) still makes the demo data the package ships."""
import importlib.util
import json
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src" / "roiops" / "data"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "tools" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_writes_the_shipped_annotations_and_an_image_of_their_size(tmp_path, capsys):
    script = _load_script()
    assert script.DATA == DATA
    script.main(tmp_path)
    made = json.loads((tmp_path / "sample.json").read_text())
    assert made == json.loads((DATA / "sample.json").read_text())
    with Image.open(tmp_path / "sample.jpg") as image:
        assert image.size == (made["images"][0]["width"], made["images"][0]["height"])
    assert "12 objects" in capsys.readouterr().out
