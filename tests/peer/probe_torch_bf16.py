"""Probe (no change): does alice_torch use the nominal sigma for bf16 probe points?
L = sum (w - 1)^2 (H = 2, R = 0) with bf16 weights near 1 and lr 1e-2, after batch 1."""
import alice_torch
import torch

w = torch.nn.Parameter((1.0 + torch.tensor([0.0, 2.0, 1.0, -3.0]) * 2.0**-8).to(torch.bfloat16))
opt = alice_torch.Alice([w], lr=1e-2, betas=(0.5, 0.999))
def closure():
    opt.zero_grad()
    loss = ((w.float() - 1.0) ** 2).sum()
    loss.backward()
    return loss
opt.step(closure)
print("attributes", opt.attributes())

c = opt.attributes()[0]["curvature"] if isinstance(opt.attributes(), list) else None
print("mean H", c, "(true 2.0):",
      "OK" if c == 2.0 else "DEFECT: nominal sigma on rounded probe points")
