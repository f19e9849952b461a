"""Training loops: pretrain, sft, prefs, rl, and their optimizer/schedule."""
