"""Pascal VOC XML annotations: 1-based inclusive boxes, a file or a folder of them."""
import numpy as np

from roiops.cli.main import main

STREET = """<annotation>
  <folder>VOC2012</folder>
  <filename>street.png</filename>
  <size><width>40</width><height>30</height><depth>3</depth></size>
  <object><name>dog</name><difficult>0</difficult>
    <bndbox><xmin>3</xmin><ymin>4</ymin><xmax>12</xmax><ymax>11</ymax></bndbox></object>
  <object><name>cat</name>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object>
  <object><name>no box</name></object>
</annotation>
"""


def run(dataset, annotations, *flags):
    return main(["crop", str(annotations), "--images", str(dataset / "images"), "--out",
                 str(dataset / "out"), "--workers", "1", "--size", "8x10", *flags])


def test_voc_file(dataset, rgb, capsys):
    (dataset / "street.xml").write_text(STREET)
    assert run(dataset, dataset / "street.xml") == 1
    captured = capsys.readouterr()
    line, = captured.err.splitlines()
    assert "street.xml object 3: no <bndbox>" in line
    image = rgb(dataset / "images" / "street.png")
    # xmin..xmax = 3..12 (1-based, inclusive) are the 10 columns 2..11: exactly its pixels.
    np.testing.assert_array_equal(rgb(dataset / "out" / "street_1_dog.png"), image[3:11, 2:12])
    manifest = (dataset / "out" / "manifest.csv").read_text().splitlines()
    assert manifest[1].startswith("street_1_dog.png,,street.png,1,dog,2,3,12,11,40,30,")
    assert manifest[2].startswith("street_2_cat.png,,street.png,2,cat,0,0,40,30,40,30,")


def test_voc_folder_with_bad_files(dataset, capsys):
    folder = dataset / "Annotations"
    (folder / "more").mkdir(parents=True)
    (folder / "street.xml").write_text(STREET.replace("<name>no box</name>", "<name>x</name>"
                                                      "<bndbox><xmin>1</xmin></bndbox>"))
    (folder / "more" / "gray.xml").write_text(
        "<annotation><filename>gray.png</filename><size><width>20</width><height>25</height>"
        "</size><object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax>"
        "<ymax>4</ymax></bndbox></object></annotation>")
    (folder / "broken.xml").write_text("<annotation><filename>")
    (folder / "other.xml").write_text("<svg/>")
    (folder / "nameless.xml").write_text("<annotation><object/></annotation>")
    assert run(dataset, folder) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 5, lines
    assert "broken.xml: not valid XML" in lines[0]
    assert "nameless.xml: no <filename>" in lines[1]
    assert "other.xml: not a Pascal VOC file" in lines[2]
    assert "street.xml object 3: <bndbox> has no <ymin>" in lines[3]
    assert "gray.png" in lines[4] and "give 20x25" in lines[4]
    assert sorted(p.name for p in (dataset / "out").glob("*.png")) == ["street_1_dog.png",
                                                                       "street_2_cat.png"]
