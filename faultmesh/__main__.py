from faultmesh.cli import main

raise SystemExit(main())
