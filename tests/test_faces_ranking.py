"""Reference embedding, likeness ranking, training crops and the contact sheet."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from headshots.generation.faces import (
    contact_sheet,
    decode_image,
    make_training_crops,
    rank_by_likeness,
    reference_embedding,
)
from tests.plugins.faces import astronaut_image, other_person_image


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_reference_embedding_ignores_an_outlier() -> None:
    rng = np.random.default_rng(7)
    person = _unit(rng.normal(size=128))
    photos = [_unit(person + 0.03 * rng.normal(size=128)) for _ in range(5)]
    stranger = _unit(rng.normal(size=128))
    robust = reference_embedding([*photos, stranger], same_person_threshold=0.8)
    naive = _unit(np.mean([*photos, stranger], axis=0))
    assert abs(float(np.linalg.norm(robust)) - 1) < 1e-5
    assert float(robust @ person) > float(naive @ person)
    assert float(robust @ stranger) < 0.2
    trimmed = reference_embedding([*photos, stranger])  # no threshold: trims the farthest quarter
    assert float(trimmed @ person) > float(naive @ person)


def test_reference_embedding_needs_input() -> None:
    with pytest.raises(ValueError):
        reference_embedding([])


def test_ranking_puts_the_person_above_others(dlib_analyzer, group_photo_bytes) -> None:
    base = astronaut_image()
    reference = reference_embedding(
        [dlib_analyzer.analyze(img)[0].embedding for img in (base, ImageOps.mirror(base))]
    )
    group = decode_image(group_photo_bytes)
    stranger_from_group = group.crop((1000, 180, 1280, 460)).resize((560, 560))
    candidates = [
        other_person_image(),  # 0: someone else
        ImageEnhance.Brightness(base.crop((30, 20, 470, 460))).enhance(1.1),  # 1: the person
        group,  # 2: six people: never a headshot
        stranger_from_group,  # 3: someone else
        base.rotate(6, resample=Image.Resampling.BICUBIC),  # 4: the person
        base.rotate(6, resample=Image.Resampling.BICUBIC).resize((500, 500)),  # 5: duplicate of 4
    ]
    ranked = rank_by_likeness(candidates, reference, dlib_analyzer, top_k=10)
    assert {r.index for r in ranked} == {1, 4} or {r.index for r in ranked} == {1, 5}
    assert [r.rank for r in ranked] == [1, 2]
    assert all(r.similarity >= dlib_analyzer.same_person_threshold for r in ranked)
    assert ranked[0].score >= ranked[1].score

    everyone = rank_by_likeness(candidates, reference, dlib_analyzer, top_k=10, min_similarity=-1)
    order = [r.index for r in everyone]
    assert 2 not in order  # the group photo has more than one face
    assert len(order) == 4 and set(order[:2]) <= {1, 4, 5} and set(order[2:]) == {0, 3}

    assert len(rank_by_likeness(candidates, reference, dlib_analyzer, top_k=1)) == 1


def test_training_crops_frame_head_and_shoulders(dlib_analyzer) -> None:
    image = astronaut_image()
    face = dlib_analyzer.analyze(image)[0]
    examples = make_training_crops(image, face, resolution=256, subject_class="woman")
    assert len(examples) == 2
    assert {e.caption for e in examples} == {"photo of ohwx woman"}
    portrait, closeup = (e.image for e in examples)
    assert portrait.size == closeup.size == (256, 256)
    portrait_face = dlib_analyzer.analyze(portrait.resize((512, 512)))[0]
    share = portrait_face.height / 512
    assert 0.25 < share < 0.42  # about a third of the frame height
    assert portrait_face.center[1] < 256  # face in the upper half: shoulders below
    closeup_faces = dlib_analyzer.analyze(closeup.resize((512, 512)))
    assert closeup_faces and closeup_faces[0].height / 512 > share
    # The same person after cropping.
    assert float(portrait_face.embedding @ face.embedding) > dlib_analyzer.same_person_threshold


def test_training_crop_pads_beyond_the_edge_without_black_borders(dlib_analyzer) -> None:
    image = astronaut_image().crop((120, 40, 330, 250))  # the face almost fills the frame
    face = dlib_analyzer.analyze(image)[0]
    portrait = make_training_crops(image, face, resolution=128, subject_class="woman", token="sks")
    pixels = np.asarray(portrait[0].image)
    assert portrait[0].caption == "photo of sks woman"
    assert pixels[:4].mean() > 30 and pixels[-4:].mean() > 30  # stretched edges, not zeros


def test_contact_sheet_is_a_jpeg_under_the_limit() -> None:
    images = [astronaut_image(), other_person_image(), astronaut_image().rotate(10)] * 3
    labels = [f"#{i}" for i in range(1, len(images) + 1)]
    data = contact_sheet(images, labels)
    sheet = Image.open(io.BytesIO(data))
    assert sheet.format == "JPEG" and sheet.width > 3 * 256
    small = contact_sheet(images, labels, max_bytes=60_000)
    assert len(small) <= 60_000
    assert Image.open(io.BytesIO(small)).width < sheet.width
    with pytest.raises(ValueError):
        contact_sheet(images, labels[:-1])
