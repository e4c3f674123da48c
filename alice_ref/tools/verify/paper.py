"""Where each ``alice-ref verify`` row sits in the paper (results R1-R8).

What of "Curvature in the Looking-Glass" (arXiv 2411.16914) is public beyond its abstract is its
official code, whose comments number the paper's Algorithm 2 (the sample step, steps 1-11) and
Algorithm 3 (the state update, steps 1-10):
docs/spec/algorithm.md#the-official-algorithms-own-step-numbers.
A row's anchor names the abstract's claim it supports (A1-A8 below, the abstract's sentences
in short) and the algorithm step whose quantity it checks. docs/paper-map.md is the same
mapping as a table.
"""

from __future__ import annotations

__all__ = ["ABSTRACT", "RESULT_ANCHORS"]

# The abstract's claims, in the abstract's order (paraphrased, one line each).
ABSTRACT = {
    "A1": "near gradient discontinuities the Hessian does not always approximate the loss "
          "curvature well",
    "A2": "each ReLU boundary, when crossed, perturbs the gradient pseudorandomly: the "
          "discontinuities form a glass-like structure",
    "A3": "the density of these gradient variations bounds how the loss may change with "
          "parameter movement",
    "A4": "the optimal kernel and sample distribution for estimating the glass density from "
          "ordinary gradient evaluations",
    "A5": "the optimal modification of quasi-Newton steps with both glass and Hessian terms",
    "A6": "exactness properties possible with Nesterov-accelerated gradient updates",
    "A7": "Alice tests which curvature terms matter most for an architecture and dataset",
    "A8": "step bounds that expand on the functionality of Adam",
}

# Per result: the abstract claims and the official algorithm's steps it stands behind.
RESULT_ANCHORS = {
    "R1": ("A1, A2", "Alg. 2, steps 9-11 (the rho that R estimates)"),
    "R2": ("A4 (sample distribution)", "Alg. 2, step 1 (Rademacher signs)"),
    "R3": ("A4 (kernel)", "Alg. 2, steps 5-11 (h and rho estimators)"),
    "R4": ("A3", "Alg. 3 model term 0.46 sqrt(|delta| rho)"),
    "R5": ("A5", "Alg. 3, steps 1-3 (alpha, h_opt, d)"),
    "R6": ("A8", "Alg. 3, steps 4-8 (bounds, clip, sign)"),
    "R7": ("A6", "Alg. 3, steps 9-10 (nu and mu updates)"),
    "R8": ("A7 (the cost of probing)", "Alg. 2 every q+1 batches, beta3"),
}
