"""Background plates of ``champ3d animate``: specs, the person removed by inpainting,
colour and image plates."""
import cv2
import numpy as np
import pytest

from champ3d.background import BackgroundSpec, background_plate, cover, parse_background, remove_person
from champ3d.errors import Champ3dInputError


def test_specs_are_parsed_and_bad_ones_named(tmp_path):
    assert parse_background("inpaint") == BackgroundSpec("inpaint")
    assert parse_background("#1a2B3c") == BackgroundSpec("colour", colour=(0x1A, 0x2B, 0x3C))
    image = tmp_path / "wall.png"
    cv2.imwrite(str(image), np.zeros((4, 4, 3), np.uint8))
    assert parse_background(str(image)) == BackgroundSpec("image", image=image)
    for text, message in (("#12345", "#RRGGBB"), ("#gggggg", "#RRGGBB"), ("white", "expected 'inpaint'"),
                          (str(tmp_path / "missing.jpg"), "not found")):
        with pytest.raises(Champ3dInputError, match=message):
            parse_background(text)


def test_inpainting_removes_the_person_from_a_plain_wall():
    rows, cols = np.mgrid[0:120, 0:90]
    wall = np.stack([150 + rows // 2, 180 - cols // 3, np.full_like(rows, 90)], -1).astype(np.uint8)
    photo = wall.copy()
    person = np.zeros((120, 90), bool)
    person[30:100, 35:55] = True
    photo[person] = (20, 20, 200)
    photo[cv2.dilate(person.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] //= 2  # a dark outline
    plate = remove_person(photo, person)
    assert plate.shape == photo.shape and plate.dtype == np.uint8
    assert np.abs(plate.astype(int) - wall)[person].mean() < 12  # the wall continues through
    far = cv2.dilate(person.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    np.testing.assert_array_equal(plate[far], photo[far])
    with pytest.raises(Champ3dInputError, match="covers the whole"):
        remove_person(photo, np.ones((120, 90), bool))


def test_plates_come_at_the_requested_size(tmp_path):
    size = (64, 48)
    colour = background_plate(BackgroundSpec("colour", colour=(1, 2, 3)), size)
    assert colour.shape == (64, 48, 3) and np.all(colour == (1, 2, 3))
    wide = np.zeros((50, 200, 3), np.uint8)
    wide[:, 95:105] = 255  # a white band in the middle of a wide picture
    image = tmp_path / "wide.png"
    cv2.imwrite(str(image), wide)
    plate = background_plate(BackgroundSpec("image", image=image), size)
    assert plate.shape == (64, 48, 3)
    assert plate[:, 20:28].min() > 200 and plate[:, :8].max() < 30  # centre-cropped, not squeezed
    photo = np.full((128, 96, 3), 200, np.uint8)
    mask = np.zeros((128, 96), bool)
    mask[40:90, 30:60] = True
    photo[mask] = 0
    inpainted = background_plate(BackgroundSpec("inpaint"), size, photo, mask)
    assert inpainted.shape == (64, 48, 3) and inpainted.min() > 150
    assert cover(np.zeros((10, 10, 3), np.uint8), (30, 20)).shape == (30, 20, 3)
