"""Analyses across datasets: consistency of similarity structure, clusters, similarity vs.
accuracy gap."""
