"""Layer 1: the results R1-R8, one small module each (docs/spec/math.md).

glass (R1), probes (R2), estimators (R3), bounds (R4), step (R5, R6), nesterov (R7),
schedule (R8). Pure array-API functions; they import nothing above ``alice_ref._xp`` and
``alice_ref.checks``.
"""
