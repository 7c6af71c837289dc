"""DWPose / OpenPose skeleton drawing: colours, positions, thresholds, keypoint orders."""
import numpy as np
import pytest

from render.skeleton import (BODY_COLOURS, BODY_LIMBS, HAND_21, HAND_EDGES, OPENPOSE_BODY_18, draw_pose,
                             hand_edge_colour)

SIZE = (200, 240)


def body_at(points):
    """(18, 2) body with the given {name: (x, y)} points; the rest far off-canvas."""
    body = np.full((18, 2), -1000.0)
    scores = np.zeros(18)
    for name, xy in points.items():
        body[OPENPOSE_BODY_18.index(name)] = xy
        scores[OPENPOSE_BODY_18.index(name)] = 0.9
    return body, scores


def test_keypoint_orders_and_tables():
    assert OPENPOSE_BODY_18[:5] == ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist")
    assert OPENPOSE_BODY_18[14:] == ("right_eye", "left_eye", "right_ear", "left_ear") and len(OPENPOSE_BODY_18) == 18
    assert HAND_21[:5] == ("wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip") and HAND_21[-1] == "little_tip"
    assert len(BODY_LIMBS) == 17 and len(BODY_COLOURS) == 18 and len(HAND_EDGES) == 20
    assert BODY_LIMBS[0] == (1, 2) and BODY_LIMBS[12] == (1, 0) and HAND_EDGES[4] == (0, 5)
    # hue edge / 20 at full saturation, times 255, rounded as OpenCV rounds
    assert hand_edge_colour(0) == (255, 0, 0)
    assert hand_edge_colour(1) == (255, 77, 0)
    assert hand_edge_colour(10) == (0, 255, 255)
    assert hand_edge_colour(19) == (255, 0, 77)


def test_limb_is_a_dimmed_ellipse_and_joints_are_full_colour_discs():
    body, scores = body_at({"neck": (60, 100), "right_shoulder": (140, 100)})
    image = draw_pose(SIZE, body=body, body_scores=scores)
    limb = BODY_COLOURS[0]  # neck -> right shoulder is limb 0, red
    dimmed = tuple(int(c * 0.6) for c in limb)
    assert tuple(image[100, 100]) == dimmed  # middle of the limb
    assert tuple(image[103, 100]) == dimmed and tuple(image[96, 100]) == dimmed  # half-width 4
    assert not image[106, 100].any() and not image[94, 100].any()
    assert tuple(image[100, 60]) == BODY_COLOURS[1] and tuple(image[100, 140]) == BODY_COLOURS[2]
    assert tuple(image[104, 60]) == BODY_COLOURS[1] and not image[106, 60].any()  # radius 4
    assert set(map(tuple, np.unique(image.reshape(-1, 3), axis=0))) == {(0, 0, 0), dimmed, BODY_COLOURS[1],
                                                                         BODY_COLOURS[2]}


def test_coordinates_are_truncated_like_dwpose():
    body, scores = body_at({"nose": (50.9, 40.9)})
    image = draw_pose(SIZE, body=body, body_scores=scores)
    ys, xs = np.nonzero(image.any(-1))
    assert (xs.min() + xs.max()) / 2 == 50 and (ys.min() + ys.max()) / 2 == 40


def test_thresholds_body_strict_hands_and_face_inclusive():
    body, scores = body_at({"neck": (60, 100), "right_shoulder": (140, 100)})
    scores[OPENPOSE_BODY_18.index("right_shoulder")] = 0.3
    image = draw_pose(SIZE, body=body, body_scores=scores)
    assert not image[100, 100].any() and not image[100, 140].any() and image[100, 60].any()
    hands = np.full((2, 21, 2), 50.0)
    hands[0, :, 0] += np.arange(21) * 5
    hand_scores = np.full((2, 21), 0.3)
    hand_scores[1] = 0.29
    image = draw_pose(SIZE, hands=hands, hand_scores=hand_scores)
    assert tuple(image[50, 50]) == (0, 0, 255)  # left wrist drawn at exactly the threshold
    hands[1] += 100
    image = draw_pose(SIZE, hands=hands, hand_scores=hand_scores)
    assert not image[150, 150].any()  # right hand below the threshold
    face = np.array([[20.0 + 2 * i, 30.0] for i in range(68)])
    image = draw_pose(SIZE, face=face, face_scores=np.full(68, 0.3))
    assert tuple(image[30, 20]) == (255, 255, 255) and tuple(image[33, 20]) == (255, 255, 255)
    assert not image[34, 20].any()  # radius 3


def test_face_points_are_dwpose_white_dots_of_radius_3():
    # any number of points per face, drawn last: white over a body disc, radius 3 inside radius 4
    body, scores = body_at({"nose": (60, 60)})
    faces = np.array([[[60.0, 60.0], [120.0, 80.0], [0.9, 90.0]], [[150.0, 150.0], [170.0, 20.5], [40.0, 0.5]]])
    image = draw_pose(SIZE, body=body, body_scores=scores, face=faces)
    for x, y in ((60, 60), (120, 80), (150, 150), (170, 20)):
        assert tuple(image[y, x]) == (255, 255, 255)
        assert tuple(image[y, x - 3]) == (255, 255, 255) and tuple(image[y + 3, x]) == (255, 255, 255)
        assert tuple(image[y + 3, x + 3]) != (255, 255, 255)
    assert tuple(image[60, 64]) == BODY_COLOURS[0] and tuple(image[56, 60]) == BODY_COLOURS[0]
    assert not image[80, 124].any() and not image[84, 120].any()
    # truncated x or y below 1 is not drawn, like DWPose
    assert not image[88:93, 0:4].any() and not image[0:4, 37:44].any()
    white = np.all(image == 255, axis=-1)
    assert white.sum() == 4 * white[77:84, 117:124].sum()
    with pytest.raises(ValueError, match="face"):
        draw_pose(SIZE, face=np.zeros(5))


def test_hand_edges_and_points():
    hands = np.zeros((2, 21, 2))
    hands[0, :] = (30.0, 30.0)
    hands[0, 0] = (100.0, 100.0)    # wrist
    hands[0, 1] = (160.0, 100.0)    # thumb cmc: edge 0 (wrist -> thumb cmc) runs along row 100
    scores = np.zeros((2, 21))
    scores[0, :2] = 1.0
    image = draw_pose(SIZE, hands=hands, hand_scores=scores)
    assert tuple(image[100, 130]) == hand_edge_colour(0)
    assert tuple(image[100, 100]) == (0, 0, 255) and tuple(image[100, 160]) == (0, 0, 255)
    # a point whose truncated x or y is 0 is not drawn (DWPose's "> eps" test on pixels)
    hands[0, 1] = (0.7, 100.0)
    image = draw_pose(SIZE, hands=hands, hand_scores=scores)
    assert not image[100, 0:5].any() and tuple(image[100, 100]) == (0, 0, 255)


def test_people_axis_and_bad_shapes():
    one, scores = body_at({"neck": (60, 100), "right_shoulder": (140, 100)})
    two = np.stack([one, one + [0, 50]])
    image = draw_pose(SIZE, body=two, body_scores=np.stack([scores, scores]))
    assert image[100, 100].any() and image[150, 100].any()
    with pytest.raises(ValueError, match="body"):
        draw_pose(SIZE, body=np.zeros((17, 2)))
    with pytest.raises(ValueError, match="scores"):
        draw_pose(SIZE, body=one, body_scores=np.ones(5))
