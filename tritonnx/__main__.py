from tritonnx.cli import main

raise SystemExit(main())
