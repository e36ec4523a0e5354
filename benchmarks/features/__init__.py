"""Evaluations of single features (VAD, AEC, mixing, segments, web load, DSP and encoder CPU)."""
