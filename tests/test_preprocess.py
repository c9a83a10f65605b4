"""onnxai.preprocess: agreement with torchvision's transforms on PIL images, the inverse, crop
geometry, the metadata spec, and load_image on every kind of file (and refusals)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnxai.errors import InputError
from onnxai.preprocess import CropBox, Preprocess, load_image, parse_floats

ROOT = Path(__file__).resolve().parents[1]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _pictures():
    skdata = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(0)
    astro = skdata.astronaut()
    return {
        "chelsea": skdata.chelsea(),
        "coffee": skdata.coffee(),
        "astronaut": astro,
        "portrait": np.ascontiguousarray(astro[:, 100:371]),  # 512 x 271: taller than wide
        "odd": rng.integers(0, 256, (301, 257, 3), dtype=np.uint8),  # odd crop offsets
        "tiny": rng.integers(0, 256, (11, 7, 3), dtype=np.uint8),
    }


def _torchvision(img, resize, crop, mean=MEAN, std=STD):
    T = pytest.importorskip("torchvision.transforms")
    steps = ([T.Resize(resize)] if resize else []) + [T.CenterCrop(crop), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)(Image.fromarray(img)).numpy()[None]  # (1, 3, h, w)


def _pixel_diff(ours, ref, std=STD, axis=1):
    """Largest difference in 0..255 pixel units."""
    shape = [1, 1, 1, 1]
    shape[axis] = 3
    return float(np.max(np.abs(ours - ref) * np.asarray(std).reshape(shape) * 255.0))


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut", "portrait", "odd", "tiny"])
def test_matches_torchvision_resize_crop(name):
    img = _pictures()[name]
    spec = Preprocess(resize=256, crop=224, mean=MEAN, std=STD)
    ours = spec(img)
    ref = _torchvision(img, 256, 224)
    assert ours.shape == ref.shape == (1, 3, 224, 224) and ours.dtype == np.float32
    assert _pixel_diff(ours, ref) <= 1.0


@pytest.mark.parametrize("name,crop", [("tiny", 16), ("tiny", (20, 5)), ("odd", (300, 256)), ("portrait", 600)])
def test_matches_torchvision_crop_only_with_padding(name, crop):
    """No resize and a crop larger than the picture (in at least one direction): torchvision pads with 0."""
    img = _pictures()[name]
    spec = Preprocess(resize=None, crop=crop, mean=MEAN, std=STD)
    ours = spec(img)
    ref = _torchvision(img, None, crop)
    assert ours.shape == ref.shape
    assert _pixel_diff(ours, ref) <= 1.0
    # the padding is black, i.e. (0 - mean) / std
    if isinstance(crop, int) and crop > max(img.shape[:2]):
        np.testing.assert_allclose(ours[0, :, 0, 0], -np.asarray(MEAN) / np.asarray(STD), rtol=1e-6)


def test_bgr_and_nhwc_variants():
    img = _pictures()["chelsea"]
    ref = _torchvision(img, 256, 224)  # RGB NCHW
    nhwc = Preprocess(layout="NHWC")(img)
    assert nhwc.shape == (1, 224, 224, 3)
    assert _pixel_diff(nhwc, ref.transpose(0, 2, 3, 1), axis=3) <= 1.0
    # BGR: the mean/std are given in the order of `channels` (per the Preprocess docstring)
    bgr_spec = Preprocess(channels="BGR", mean=MEAN, std=STD)
    bgr = bgr_spec(img)
    rgb = Preprocess(mean=MEAN, std=STD)(img)
    assert bgr.shape == (1, 3, 224, 224)
    np.testing.assert_array_equal(bgr[:, 0], rgb[:, 2])
    np.testing.assert_array_equal(bgr[:, 2], rgb[:, 0])
    both = Preprocess(channels="BGR", layout="NHWC", mean=MEAN, std=STD)(img)
    np.testing.assert_array_equal(both, rgb[:, ::-1].transpose(0, 2, 3, 1))


@pytest.mark.parametrize("channels", ["RGB", "BGR"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("scale,mean,std", [(1 / 255, MEAN, STD), (1.0, (123.7, 116.3, 103.5), (58.4, 57.1, 57.4)),
                                            (1 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))])
def test_denormalise_inverts_normalise(channels, layout, scale, mean, std):
    spec = Preprocess(channels=channels, layout=layout, scale=scale, mean=mean, std=std)
    crop = np.random.default_rng(1).integers(0, 256, (13, 9, 3), dtype=np.uint8)
    crop[0, 0] = 0
    crop[0, 1] = 255
    x = spec.normalise(crop)
    assert x.shape == ((1, 3, 13, 9) if layout == "NCHW" else (1, 13, 9, 3))
    np.testing.assert_array_equal(spec.denormalise(x), crop)
    np.testing.assert_array_equal(spec.denormalise(x[0]), crop)


def test_normalise_values_exactly():
    spec = Preprocess(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    crop = np.array([[[255, 0, 51]]], np.uint8)
    np.testing.assert_allclose(spec.normalise(crop)[0, :, 0, 0], [1.0, -1.0, 0.1], rtol=1e-6)


def test_crop_box_geometry_and_to_image_without_resize():
    img = np.random.default_rng(2).integers(0, 256, (10, 13, 3), dtype=np.uint8)
    spec = Preprocess(resize=None, crop=(4, 6))
    box = spec.geometry(img.shape[:2])
    assert box == CropBox(image_hw=(10, 13), resized_hw=(10, 13), top=3, left=4, size=(4, 6))
    np.testing.assert_array_equal(spec.crop_image(img), img[3:7, 4:10])
    placed = box.to_image(np.ones((4, 6), np.float32))
    assert placed.shape == (10, 13)
    inside = np.zeros((10, 13), bool)
    inside[3:7, 4:10] = True
    np.testing.assert_array_equal(placed[inside], 1.0)
    assert np.isnan(placed[~inside]).all()
    # the values land where they came from: a map equal to the crop's red channel
    red = spec.crop_image(img)[..., 0].astype(np.float32)
    np.testing.assert_array_equal(box.to_image(red, fill=-1)[3:7, 4:10], red)
    assert (box.to_image(red, fill=-1)[~inside] == -1).all()


def test_crop_box_with_resize_covers_the_crop_region():
    spec = Preprocess(resize=20, crop=10)
    box = spec.geometry((40, 60))
    assert box.resized_hw == (20, 30) and (box.top, box.left) == (5, 10) and box.size == (10, 10)
    placed = box.to_image(np.ones((10, 10)), fill=0.0)
    assert placed.shape == (40, 60)
    # the crop is rows 10..30, columns 20..40 of the original; bilinear edges blur over one pixel
    assert (placed[12:28, 22:38] > 0.99).all()
    assert (placed[:8] == 0).all() and (placed[32:] == 0).all() and (placed[:, :18] == 0).all() and (placed[:, 42:] == 0).all()


def test_metadata_json_round_trip_and_unknown_keys():
    spec = Preprocess(resize=None, crop=(200, 300), interpolation="bicubic", scale=1.0,
                      mean=(1, 2, 3), std=(4, 5, 6), channels="BGR", layout="NHWC")
    text = spec.to_json()
    assert json.loads(text)["crop"] == [200, 300]
    assert Preprocess.from_json(text) == spec
    assert Preprocess.from_json(Preprocess().to_json()) == Preprocess()
    with pytest.raises(InputError) as e:
        Preprocess.from_json('{"resize": 256, "colour": "RGB", "zoom": 2}')
    assert str(e.value).startswith("unknown preprocessing keys ['colour', 'zoom']; known: [")
    with pytest.raises(InputError, match="the preprocessing spec is not valid JSON"):
        Preprocess.from_json("{resize: 256")


def test_spec_validation_messages():
    with pytest.raises(InputError, match="unknown interpolation 'cubic'"):
        Preprocess(interpolation="cubic")
    with pytest.raises(InputError, match="channels must be 'RGB', 'BGR' or 'L' \\(grey\\), not 'RGBA'"):
        Preprocess(channels="RGBA")
    with pytest.raises(InputError, match="std values must be non-zero"):
        Preprocess(std=(1, 0, 1))
    with pytest.raises(InputError, match="expected an RGB picture as a \\(height, width, 3\\) uint8 array"):
        Preprocess()(np.zeros((8, 8, 3), np.float32))
    assert parse_floats("0.5") == (0.5, 0.5, 0.5)
    assert parse_floats("1, 2 3") == (1.0, 2.0, 3.0)
    with pytest.raises(InputError, match="--mean needs 3 numbers"):
        parse_floats("1,2", what="--mean")


# ----------------------------------------------------------------------------- load_image


@pytest.fixture(scope="module")
def picture():
    return np.random.default_rng(5).integers(0, 256, (20, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", ["png", "bmp", "tiff", "webp"])
def test_load_lossless_formats(tmp_path, picture, ext):
    path = tmp_path / f"p.{ext}"
    Image.fromarray(picture).save(path, **({"lossless": True} if ext == "webp" else {}))
    got = load_image(path)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, picture)


def test_load_jpeg(tmp_path, picture):
    path = tmp_path / "p.jpg"
    Image.fromarray(picture).save(path, quality=95)
    got = load_image(path)
    assert got.shape == (20, 30, 3)
    np.testing.assert_array_equal(got, np.asarray(Image.open(path).convert("RGB")))


def test_load_greyscale_palette_rgba_16bit(tmp_path, picture):
    grey = picture[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    got = load_image(tmp_path / "g.png")
    assert got.shape == (20, 30, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], grey)

    pal = Image.fromarray(picture).quantize(8)
    pal.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))

    rgba = np.dstack([picture, np.full((20, 30), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # fully transparent: white after compositing
    rgba[0, 1] = (100, 0, 200, 128)  # half transparent: halfway to white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    got = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(got[0, 0], [255, 255, 255])
    np.testing.assert_allclose(got[0, 1].astype(int), [177, 127, 227], atol=1)
    np.testing.assert_array_equal(got[1:], picture[1:])

    # a transparent palette entry (GIF-style) also becomes white
    pt = Image.new("P", (3, 2), 1)
    pt.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pt.info["transparency"] = 0
    pt.putpixel((0, 0), 0)
    pt.save(tmp_path / "pt.png", transparency=0)
    got = load_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(got[0, 0], [255, 255, 255])
    np.testing.assert_array_equal(got[1, 2], [10, 20, 30])

    sixteen = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").mode.startswith("I")
    got = load_image(tmp_path / "s.png")
    assert got.shape == (20, 30, 3) and got.dtype == np.uint8
    # 16 bits scale by 65535, whatever the picture's own maximum (59900 here)
    np.testing.assert_array_equal(got[..., 0], np.rint(sixteen / 65535.0 * 255.0).astype(np.uint8))
    assert (np.diff(got[..., 0].ravel().astype(int)) >= 0).all()


def test_exif_orientation_is_applied(tmp_path, picture):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    path = tmp_path / "rot.jpg"
    Image.fromarray(picture).save(path, exif=exif, quality=95)
    assert Image.open(path).size == (30, 20)
    got = load_image(path)
    assert got.shape == (30, 20, 3)
    plain = np.asarray(Image.open(path).convert("RGB")).astype(int)
    np.testing.assert_array_equal(got, np.rot90(plain, k=-1))


def test_bad_files(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture\n")
    with pytest.raises(InputError) as e:
        load_image(fake)
    assert str(e.value).startswith(f"cannot read {fake} as an image (")
    assert str(e.value).endswith("give a JPEG, PNG, BMP, TIFF or WebP file")
    with pytest.raises(InputError) as e:
        load_image(tmp_path / "missing.jpg")
    assert str(e.value) == f"image file not found: {tmp_path / 'missing.jpg'}"
    with pytest.raises(InputError, match="is a folder; give the image file itself"):
        load_image(tmp_path)
    # a truncated PNG: the header is fine, the pixels are cut off
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(InputError, match="cannot read .*cut.png as an image"):
        load_image(cut)


@pytest.mark.parametrize("content", [b"", b"x", b"xx", b"BM", b"II*", b"\x89PNG", bytes(range(15))])
def test_tiny_files(tmp_path, content):
    # shorter than the 16 bytes the format checks read: some of Pillow's checks unpack 4 bytes and
    # raised struct.error from inside the header reader
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(content)
    with pytest.raises(InputError, match="cannot read .*tiny.png as an image"):
        load_image(tiny)


def _png_bytes(width: int, height: int) -> bytes:
    """A valid all-black 1-bit greyscale PNG, built by hand: big pictures cost little to make."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_huge_picture_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import ImageFile

    path = tmp_path / "huge.png"
    path.write_bytes(_png_bytes(20000, 20000))  # 400 megapixels, ~50 kB on disk
    assert path.stat().st_size < 200_000
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    with pytest.raises(InputError) as e:
        load_image(path)  # the default limit: 100 million pixels
    assert str(e.value).startswith(f"{path} is 20000x20000 = 400,000,000 pixels, above the limit of 100,000,000")
    assert "max_pixels=None / --max-pixels" in str(e.value)
    assert decoded == []  # refused from the header alone
    # a small limit refuses a small file the same way; max_pixels=None lifts the limit
    small = tmp_path / "small.png"
    small.write_bytes(_png_bytes(40, 30))
    with pytest.raises(InputError, match=r"40x30 = 1,200 pixels, above the limit of 1,000"):
        load_image(small, max_pixels=1000)
    got = load_image(small, max_pixels=None)
    assert got.shape == (30, 40, 3) and (got == 0).all()
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard is restored afterwards


def test_arrays_are_accepted_and_checked():
    rgb = np.zeros((4, 5, 3), np.uint8)
    assert load_image(rgb) is rgb or np.array_equal(load_image(rgb), rgb)
    assert load_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert load_image(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(InputError, match="expected an RGB picture"):
        load_image(np.zeros((4, 5, 3), np.float64))


def test_sample_pictures_load():
    for name in ("chelsea.png", "coffee.png"):
        path = ROOT / "samples" / name
        if not path.exists():
            pytest.skip(f"{path} is missing")
        img = load_image(path)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


def test_overrides_can_switch_resizing_off():
    from onnxai import Preprocess

    p = Preprocess(resize=256, crop=224)
    assert p.with_overrides(resize=None).resize == 256  # None keeps the value
    off = p.with_overrides(resize=0)
    assert off.resize is None and off.crop == 224
    pic = np.zeros((300, 400, 3), np.uint8)
    pic[38:262, 88:312] = 255  # exactly the centre 224x224 of the unresized picture
    assert off.crop_image(pic).min() == 255
