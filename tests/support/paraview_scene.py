"""Run INSIDE ParaView (``xvfb-run -a pvbatch paraview_scene.py IN.json OUT.json``): read each
VTP / VTU / VTM named in IN.json with ParaView's readers and report the blocks, point and cell
counts and the arrays with their ranges; render the first VTP coloured by its ``compartment``
cell data (categorical, the colours IN.json gives, flat: ambient light only, so each
compartment's pixels have exactly its colour) to IN.json's ``png``."""

import json
import sys

from paraview import servermanager
from paraview.simple import (ColorBy, CreateView, GetColorTransferFunction, OpenDataFile, ResetCamera,
                             SaveScreenshot, Show)


def _arrays(data) -> dict:
    out = {}
    for where, fields in (("cell", data.GetCellData()), ("point", data.GetPointData())):
        for i in range(fields.GetNumberOfArrays()):
            array = fields.GetArray(i)
            if array is None:
                continue
            out[f"{where}:{array.GetName()}"] = {"range": list(array.GetRange()), "tuples": array.GetNumberOfTuples(),
                                                 "type": array.GetDataTypeAsString()}
    return out


def _describe(data) -> dict:
    if data.IsA("vtkMultiBlockDataSet"):
        blocks = {}
        for i in range(data.GetNumberOfBlocks()):
            name = data.GetMetaData(i).Get(data.NAME()) if data.HasMetaData(i) else str(i)
            blocks[name] = _describe(data.GetBlock(i))
        return {"blocks": blocks}
    return {"points": data.GetNumberOfPoints(), "cells": data.GetNumberOfCells(), "arrays": _arrays(data),
            "bounds": list(data.GetBounds())}


def main() -> None:
    with open(sys.argv[1]) as handle:
        job = json.load(handle)
    result = {}
    for path in job["files"]:
        reader = OpenDataFile(path)
        reader.UpdatePipeline()
        result[path] = _describe(servermanager.Fetch(reader))
        result[path]["reader"] = reader.GetXMLName()
    picture = job.get("render")
    if picture:
        reader = OpenDataFile(picture["file"])
        view = CreateView("RenderView")
        view.ViewSize = [picture["width"], picture["height"]]
        view.OrientationAxesVisibility = 0
        try:
            view.UseColorPaletteForBackground = 0
        except AttributeError:
            pass
        view.Background = [1.0, 1.0, 1.0]
        display = Show(reader, view)
        ColorBy(display, ("CELLS", "compartment"))
        display.Ambient, display.Diffuse, display.Specular = 1.0, 0.0, 0.0
        lut = GetColorTransferFunction("compartment")
        lut.InterpretValuesAsCategories = 1
        annotations, colors = [], []
        for value, (name, rgb) in sorted(picture["colors"].items(), key=lambda kv: int(kv[0])):
            annotations += [str(value), name]
            colors += [c / 255.0 for c in rgb]
        lut.Annotations, lut.IndexedColors = annotations, colors
        display.SetScalarBarVisibility(view, False)
        ResetCamera(view)
        SaveScreenshot(picture["png"], view, ImageResolution=[picture["width"], picture["height"]])
        result["png"] = picture["png"]
    with open(sys.argv[2], "w") as handle:
        json.dump(result, handle)


main()
