from mesh_export.cli import main

main()
