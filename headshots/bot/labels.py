"""Words both chat front ends show for the same choices (one place, so the platforms agree)."""

from __future__ import annotations

CLASS_LABELS = {"man": "Man", "woman": "Woman", "person": "Person (neutral)"}

COLOUR_GRADE_LABELS = {
    "film_portra": "Film Portra (warm)",
    "film_velvia": "Film Velvia (vivid)",
    "ektar": "Ektar (saturated)",
    "none": "No grading",
}
