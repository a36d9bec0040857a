"""Synthetic connectomics datasets for tests, benchmarks and the bundled sample.

- :mod:`mesh_export.datasets.neurons` draws neuron-like cells (a soma plus
  branching, tapering neurites) into a labelled voxel volume and meshes them.
- :mod:`mesh_export.datasets.sample_neuron` grows one pyramidal neuron at true scale (a
  branching skeleton and the closed surface around it) for the bundled sample.
- :mod:`mesh_export.datasets.precomputed` writes those meshes as real
  Neuroglancer precomputed layers (legacy, sharded multi-LOD Draco, graphene)
  that CloudVolume reads unchanged, and builds the bundled offline sample.

These modules are the only ones allowed to import zmesh (LGPL); they import it
lazily inside functions so the package runtime never needs it.
"""
